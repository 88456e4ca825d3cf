#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded file server through its `Router`, without sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use plugfleet::firmware::server::{FileServer, RangeRequest, parse_range, random_token};
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const NAME: &str = "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin";

fn image() -> Bytes {
    Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>())
}

fn server() -> FileServer {
    FileServer::with_token(TOKEN, [(NAME.to_owned(), image())]).unwrap()
}

fn client(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)), 40_000)
}

async fn send(
    s: &FileServer,
    method: &str,
    uri: &str,
    range: Option<&str>,
    from: SocketAddr,
) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(r) = range {
        req = req.header(header::RANGE, r);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(from));
    let resp = s.router().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn good_path() -> String {
    format!("/fw/{TOKEN}/{NAME}")
}

#[tokio::test]
async fn serves_the_image_with_its_length() {
    let s = server();
    assert_eq!(s.path_for(NAME), Some(good_path().as_str()));
    let (st, h, body) = send(&s, "GET", &good_path(), None, client(2)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h[header::CONTENT_LENGTH], "100000");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(body, image());
    let stats = s.stats(client(2).ip());
    assert_eq!(stats.bytes, 100_000);
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.complete, 1);
}

#[tokio::test]
async fn wrong_token_and_other_paths_are_404() {
    let s = server();
    let other_token = "fedcba9876543210fedcba9876543210";
    for path in [
        "/".to_owned(),
        "/fw".to_owned(),
        format!("/fw/{TOKEN}"),
        format!("/fw/{TOKEN}/"),
        format!("/fw/{other_token}/{NAME}"),
        format!("/fw/{}/{NAME}", &TOKEN[..31]),
        format!("/fw/{TOKEN}/other.bin"),
        format!("/fw/{TOKEN}/{NAME}/"),
        format!("/fw/{TOKEN}/{NAME}x"),
        format!("/FW/{TOKEN}/{NAME}"),
        format!("//fw/{TOKEN}/{NAME}"),
        format!("/fw//{TOKEN}/{NAME}"),
        "/etc/passwd".to_owned(),
    ] {
        let (st, _, body) = send(&s, "GET", &path, None, client(3)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(body.len() < 100, "{path}");
    }
    assert_eq!(s.served(client(3).ip()), 0);
}

#[tokio::test]
async fn path_traversal_attempts_are_404() {
    let s = server();
    for path in [
        format!("/fw/{TOKEN}/../{TOKEN}/{NAME}"),
        format!("/fw/x/../{TOKEN}/{NAME}"),
        format!("/fw/{TOKEN}/./{NAME}"),
        format!("/fw/{TOKEN}/..%2f{NAME}"),
        format!("/fw/{TOKEN}/%2e%2e/{TOKEN}/{NAME}"),
        format!("/fw/%2e%2e/fw/{TOKEN}/{NAME}"),
        format!("/fw/{TOKEN}%2f{NAME}"),
        format!("/fw/{TOKEN}/%68s110v1_us_1.2.3_Build_171016_Rel.100427.bin"),
        format!("/fw/{TOKEN}/..%252f{NAME}"),
        format!("/fw/{TOKEN}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"),
        "/fw/../../../../etc/passwd".to_owned(),
        "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/..%5c..%5cwindows%5cwin.ini".to_owned(),
    ] {
        let (st, _, _) = send(&s, "GET", &path, None, client(4)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(s.served(client(4).ip()), 0);
}

#[tokio::test]
async fn a_query_string_does_not_matter() {
    let s = server();
    let (st, _, body) = send(&s, "GET", &format!("{}?x=1", good_path()), None, client(5)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body.len(), 100_000);
}

#[tokio::test]
async fn head_gives_headers_without_body_or_count() {
    let s = server();
    let (st, h, body) = send(&s, "HEAD", &good_path(), None, client(6)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h[header::CONTENT_LENGTH], "100000");
    assert!(body.is_empty());
    let stats = s.stats(client(6).ip());
    assert_eq!(stats.bytes, 0);
    assert_eq!(stats.requests, 1);
    // HEAD on an unknown path is 404 too.
    let (st, _, _) = send(&s, "HEAD", "/fw/nope", None, client(6)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_methods_are_refused() {
    let s = server();
    for m in ["POST", "PUT", "DELETE"] {
        let (st, h, _) = send(&s, m, &good_path(), None, client(7)).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(h[header::ALLOW], "GET, HEAD");
        let (st, _, _) = send(&s, m, "/x", None, client(7)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{m}");
    }
}

#[tokio::test]
async fn ranges() {
    let s = server();
    let img = image();
    // a-b
    let (st, h, body) = send(&s, "GET", &good_path(), Some("bytes=10-19"), client(8)).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_RANGE], "bytes 10-19/100000");
    assert_eq!(h[header::CONTENT_LENGTH], "10");
    assert_eq!(body, img.slice(10..20));
    // a- (open-ended: resume)
    let (st, h, body) = send(&s, "GET", &good_path(), Some("bytes=99990-"), client(8)).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_RANGE], "bytes 99990-99999/100000");
    assert_eq!(body, img.slice(99_990..));
    // -n (suffix)
    let (st, h, body) = send(&s, "GET", &good_path(), Some("bytes=-5"), client(8)).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_RANGE], "bytes 99995-99999/100000");
    assert_eq!(body.len(), 5);
    // end past the length is clipped
    let (st, h, body) = send(&s, "GET", &good_path(), Some("bytes=0-999999"), client(8)).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_RANGE], "bytes 0-99999/100000");
    assert_eq!(body, img);
    // unsatisfiable
    for r in ["bytes=100000-", "bytes=200000-200010", "bytes=-0"] {
        let (st, h, body) = send(&s, "GET", &good_path(), Some(r), client(8)).await;
        assert_eq!(st, StatusCode::RANGE_NOT_SATISFIABLE, "{r}");
        assert_eq!(h[header::CONTENT_RANGE], "bytes */100000", "{r}");
        assert!(body.is_empty());
    }
    // malformed or several ranges: the whole file
    for r in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-"] {
        let (st, _, body) = send(&s, "GET", &good_path(), Some(r), client(8)).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        assert_eq!(body.len(), 100_000, "{r}");
    }
    // HEAD with a range
    let (st, h, body) = send(&s, "HEAD", &good_path(), Some("bytes=0-9"), client(8)).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_LENGTH], "10");
    assert!(body.is_empty());
}

#[tokio::test]
async fn bytes_are_counted_per_client() {
    let s = server();
    send(&s, "GET", &good_path(), Some("bytes=0-49999"), client(9)).await;
    send(&s, "GET", &good_path(), Some("bytes=50000-"), client(9)).await;
    send(&s, "GET", &good_path(), None, client(10)).await;
    send(&s, "GET", &good_path(), Some("bytes=0-0"), client(11)).await;
    assert_eq!(s.served(client(9).ip()), 100_000);
    assert_eq!(
        s.stats(client(9).ip()).complete,
        0,
        "ranges are not full bodies"
    );
    assert_eq!(s.served(client(10).ip()), 100_000);
    assert_eq!(s.served(client(11).ip()), 1);
    assert_eq!(s.served(client(12).ip()), 0, "never fetched");
    assert_eq!(s.all_stats().len(), 3);
}

#[tokio::test]
async fn an_abandoned_download_counts_only_what_was_sent() {
    let s = server();
    let mut req = Request::builder()
        .uri(good_path())
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(client(13)));
    let resp = s.router().oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    // Read one chunk, then drop the body (the plug went away).
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    drop(body);
    let served = s.served(client(13).ip());
    assert_eq!(served, first.len() as u64);
    assert!(served < 100_000);
    assert_eq!(s.stats(client(13).ip()).complete, 0);
}

#[tokio::test]
async fn several_images_and_odd_names() {
    let s = FileServer::with_token(
        TOKEN,
        [
            ("a b/../c.bin".to_owned(), Bytes::from_static(b"one")),
            ("a_b_.._c.bin".to_owned(), Bytes::from_static(b"two")),
        ],
    )
    .unwrap();
    let p1 = s.path_for("a b/../c.bin").unwrap().to_owned();
    let p2 = s.path_for("a_b_.._c.bin").unwrap().to_owned();
    assert_ne!(p1, p2);
    assert!(!p1.contains(' ') && p1.matches('/').count() == 3, "{p1}");
    assert_eq!(send(&s, "GET", &p1, None, client(14)).await.2, "one");
    assert_eq!(send(&s, "GET", &p2, None, client(14)).await.2, "two");
}

#[test]
fn tokens_are_random_and_long() {
    let a = random_token().unwrap();
    let b = random_token().unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert!(FileServer::new(Vec::<(String, Bytes)>::new()).is_err());
}

#[test]
fn range_parser() {
    assert_eq!(parse_range("bytes=0-0", 10), RangeRequest::Part(0, 0));
    assert_eq!(parse_range("bytes= 2-", 10), RangeRequest::Part(2, 9));
    assert_eq!(parse_range("bytes=-20", 10), RangeRequest::Part(0, 9));
    assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
    assert_eq!(parse_range("bytes=0-", 0), RangeRequest::Unsatisfiable);
    assert_eq!(parse_range("bytes=-", 10), RangeRequest::Full);
    assert_eq!(parse_range("bytes=+1-2", 10), RangeRequest::Full);
    assert_eq!(
        parse_range("bytes=99999999999999999999-", 10),
        RangeRequest::Full
    );
}

#[tokio::test]
async fn real_socket_download_and_shutdown() {
    let s = server();
    let running = s
        .spawn(&[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)])
        .await
        .unwrap();
    let url = running
        .url_for(IpAddr::V4(Ipv4Addr::LOCALHOST), NAME)
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let addr = running.addrs()[0];
    // A minimal HTTP/1.1 GET.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let path = good_path();
    sock.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut resp),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&resp[..200]).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-length: 100000"), "{text}");
    assert!(resp.ends_with(&image()[99_000..]));
    assert_eq!(s.served(IpAddr::V4(Ipv4Addr::LOCALHOST)), 100_000);
    running.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn per_key_paths_count_per_plug_even_from_one_address() {
    let img = image();
    let s = FileServer::per_key([
        ("127.0.0.2".to_owned(), NAME.to_owned(), img.clone()),
        ("127.0.0.3".to_owned(), NAME.to_owned(), img.clone()),
    ])
    .unwrap();
    let a = s.path_for("127.0.0.2").unwrap().to_owned();
    let b = s.path_for("127.0.0.3").unwrap().to_owned();
    assert_ne!(a, b, "each plug has its own secret path");
    assert!(a.ends_with(NAME) && b.ends_with(NAME));
    // Both fetch from the same source address (loopback, NAT).
    send(&s, "GET", &a, None, client(1)).await;
    send(&s, "GET", &b, None, client(1)).await;
    send(&s, "GET", &b, Some("bytes=0-9"), client(1)).await;
    assert_eq!(s.key_stats("127.0.0.2").bytes, 100_000);
    assert_eq!(s.key_stats("127.0.0.2").complete, 1);
    assert_eq!(s.key_stats("127.0.0.3").bytes, 100_010);
    assert_eq!(s.key_stats("127.0.0.3").requests, 2);
    assert_eq!(s.served(client(1).ip()), 200_010);
    assert_eq!(s.key_stats("127.0.0.4"), Default::default());
    // One plug's token does not open another's file.
    let token_a = a.split('/').nth(2).unwrap();
    let cross = format!("/fw/{token_a}/x/{NAME}");
    assert_eq!(
        send(&s, "GET", &cross, None, client(1)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn shutdown_cuts_off_a_client_that_stopped_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let big = Bytes::from(vec![7u8; 16 * 1024 * 1024]);
    let s = FileServer::with_token(TOKEN, [(NAME.to_owned(), big)]).unwrap();
    let running = s
        .spawn(&[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)])
        .await
        .unwrap();
    let addr = running.addrs()[0];
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", good_path()).as_bytes())
        .await
        .unwrap();
    // Read a little, then stop reading (a stalled plug): the server blocks on a full socket.
    let mut first = vec![0u8; 4096];
    sock.read_exact(&mut first).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), running.shutdown())
        .await
        .expect("shutdown is bounded");
    // The connection was closed: reading what is buffered ends (EOF or reset), short of 16 MiB.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut rest),
    )
    .await
    .expect("the server closed the connection");
    if r.is_ok() {
        assert!(
            rest.len() + first.len() < 16 * 1024 * 1024,
            "the body was cut short"
        );
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A minimal HTTP/1.1 GET from `from` (a loopback address the client socket is bound to);
/// returns the status code and the body.
async fn get_from(from: Ipv4Addr, addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut resp))
        .await
        .expect("the server answers")
        .unwrap();
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let status = String::from_utf8_lossy(&resp[..head_end])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, resp[head_end + 4..].to_vec())
}

#[tokio::test]
async fn a_plugs_path_answers_only_that_plugs_address() {
    let plug_a = Ipv4Addr::new(127, 0, 0, 5);
    let plug_b = Ipv4Addr::new(127, 0, 0, 6);
    let s = FileServer::per_plug([
        (IpAddr::V4(plug_a), NAME.to_owned(), image()),
        (IpAddr::V4(plug_b), NAME.to_owned(), image()),
    ])
    .unwrap();
    let a = s.path_for("127.0.0.5").unwrap().to_owned();
    let from = |ip: Ipv4Addr| SocketAddr::new(IpAddr::V4(ip), 40_000);

    // Through the router: another plug's address and a stranger get what an unknown path gets.
    let unknown = send(&s, "GET", "/fw/nothing/here.bin", None, from(plug_a)).await;
    for other in [plug_b, Ipv4Addr::new(127, 0, 0, 77), Ipv4Addr::LOCALHOST] {
        let r = send(&s, "GET", &a, None, from(other)).await;
        assert_eq!(r.0, StatusCode::NOT_FOUND, "{other}");
        assert_eq!(
            (r.1, r.2),
            (unknown.1.clone(), unknown.2.clone()),
            "{other}"
        );
        let r = send(&s, "HEAD", &a, None, from(other)).await;
        assert_eq!(r.0, StatusCode::NOT_FOUND, "HEAD from {other}");
    }
    assert_eq!(s.key_stats("127.0.0.5"), Default::default());
    assert_eq!(s.wrong_client_requests(), 6);
    let (st, _, body) = send(&s, "GET", &a, None, from(plug_a)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, image());
    assert_eq!(s.key_stats("127.0.0.5").bytes, 100_000);

    // Over real sockets, the client bound to another loopback address.
    let running = s
        .spawn(&[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)])
        .await
        .unwrap();
    let addr = running.addrs()[0];
    let (code, _) = get_from(Ipv4Addr::new(127, 0, 0, 77), addr, &a).await;
    assert_eq!(code, 404);
    assert_eq!(
        s.key_stats("127.0.0.5").bytes,
        100_000,
        "a stranger's request does not count as the plug's"
    );
    let (code, body) = get_from(plug_a, addr, &a).await;
    assert_eq!(code, 200);
    assert_eq!(body.len(), 100_000);
    assert_eq!(s.key_stats("127.0.0.5").bytes, 200_000);
    assert_eq!(s.key_stats("127.0.0.5").complete, 2);
    assert_eq!(s.key_stats("127.0.0.6"), Default::default());
    running.shutdown().await;
}

#[tokio::test]
async fn connections_per_client_are_capped() {
    use plugfleet::firmware::server::ServeLimits;
    use tokio::io::AsyncReadExt;
    let s = server();
    let limits = ServeLimits {
        header_read_timeout: std::time::Duration::from_secs(120),
        per_client: 3,
        total: 100,
    };
    let running = s
        .spawn_with(
            &[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
            limits,
        )
        .await
        .unwrap();
    let addr = running.addrs()[0];
    let hog = Ipv4Addr::new(127, 0, 0, 40);
    let connect_from = |ip: Ipv4Addr| async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((ip, 0))).unwrap();
        sock.connect(addr).await.unwrap()
    };
    // Three idle connections are held (the timeout is long)…
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(hog).await);
    }
    // …the fourth from the same address is closed at once…
    let mut fourth = connect_from(hog).await;
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), fourth.read(&mut b))
        .await
        .expect("closed");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(s.refused_connections() >= 1);
    // …while another address is served.
    let (code, body) = get_from(Ipv4Addr::new(127, 0, 0, 41), addr, &good_path()).await;
    assert_eq!((code, body.len()), (200, 100_000));
    // Closing the idle ones frees the slots (eventually: the server sees the close).
    drop(held);
    let mut served = false;
    for _ in 0..200 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((hog, 0))).unwrap();
        let mut c = sock.connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            good_path()
        );
        if c.write_all(req.as_bytes()).await.is_ok() {
            let mut resp = Vec::new();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(20), c.read_to_end(&mut resp))
                    .await;
            if resp.starts_with(b"HTTP/1.1 200") {
                served = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        served,
        "the address is served again once its connections closed"
    );
    running.shutdown().await;
}

/// 200 half-open connections from 127.0.0.1 (some sending half a request head, some nothing)
/// are all closed by the header-read timeout or the per-client cap, and a simulated plug's real
/// download through the updater's per-plug path succeeds while they are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_and_a_plug_still_downloads() {
    use plugfleet::firmware::server::ServeLimits;
    use plugfleet::net::{Client, ClientConfig};
    use plugfleet::protocol::DownloadState;
    use plugfleet::sim::{Fleet, FleetSpec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let good = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/firmware/hs110v1_us_1.2.7_Build_210310_Rel.113052.bin"),
    )
    .unwrap();
    let base = Ipv4Addr::new(127, 91, (std::process::id() % 200) as u8, 2);
    let mut spec = FleetSpec::on_free_port(base, 1);
    spec.profiles = vec!["hs110-us-hw1".into()];
    spec.time_scale = 0.01;
    let fleet = Fleet::start(spec).await.unwrap();
    let plug = fleet.plugs()[0].clone();

    let s =
        FileServer::per_plug([(plug.addr(), NAME.to_owned(), Bytes::from(good.clone()))]).unwrap();
    let limits = ServeLimits {
        header_read_timeout: std::time::Duration::from_secs(2),
        ..ServeLimits::default()
    };
    let running = s
        .spawn_with(
            &[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
            limits,
        )
        .await
        .unwrap();
    let addr = running.addrs()[0];

    let mut flood = Vec::new();
    for i in 0..200 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            let _ = c.write_all(b"GET /fw/").await;
        }
        flood.push(c);
    }

    let c = Client::new(
        plug.addr(),
        ClientConfig::with_timeout(fleet.port(), std::time::Duration::from_secs(3)),
    );
    let url = running
        .url_for(IpAddr::V4(Ipv4Addr::LOCALHOST), &plug.ip.to_string())
        .unwrap();
    c.download_firmware(&url).await.unwrap();
    let mut done = false;
    for _ in 0..1000 {
        match c.download_state().await {
            Ok(st) if st.is_complete() => {
                done = true;
                break;
            }
            Ok(DownloadState { .. }) => {}
            Err(e) => panic!("the plug's download failed: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(done, "the plug's download completed during the flood");
    assert_eq!(s.key_stats(&plug.ip.to_string()).bytes, good.len() as u64);
    assert_eq!(plug.stats().downloads_completed, 1);

    // Every flood connection ends: closed by the server, not by us.
    let mut set = tokio::task::JoinSet::new();
    for mut c in flood {
        set.spawn(async move {
            let mut b = [0u8; 512];
            loop {
                match tokio::time::timeout(std::time::Duration::from_secs(30), c.read(&mut b)).await
                {
                    Err(_) => return false,
                    Ok(Ok(0) | Err(_)) => return true,
                    // A 408 or similar before closing is fine.
                    Ok(Ok(_)) => {}
                }
            }
        });
    }
    let mut closed = 0;
    while let Some(r) = set.join_next().await {
        if r.unwrap() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 200,
        "every half-open connection was closed by the server"
    );
    assert!(
        s.refused_connections() > 0,
        "the per-client cap closed some at once"
    );
    running.shutdown().await;
    fleet.shutdown().await;
}
