//! `plugfleet history`: the energy history every metered plug keeps (issue 16) — one line (or
//! JSON object) per device, outlet and day or month, `{ip, mac, child_id, year, month, day,
//! kwh, verdict, reasons}`, judged by the history rules of [`crate::fleet::energy`].
//!
//! Devices are found and read once the way `plugfleet status` does ([`crate::cmd::status::round`]),
//! then each metered device's history is fetched with the history task's fetch
//! ([`crate::net::history::fetch_job`]: outlets one after another) into the same fleet model;
//! the lines are a view of it ([`crate::fleet::stats::rows`]).
//!
//! `--erase --host …` erases the named plugs' statistics (`emeter.erase_emeter_stat`) after
//! showing what will be lost and reading an explicit `y`; read-only mode refuses it.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::Args;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config};
use crate::fleet::energy::Date;
use crate::fleet::model::{Device, Fleet};
use crate::fleet::ratings::Overrides;
use crate::fleet::stats::{HistoryRow, Listing, metered, rows};
use crate::net::ClientConfig;
use crate::net::history::{HistoryConfig, HistoryJob, clock_of, erase_stats, fetch_meters};
use crate::protocol::tdp::TDP_PORT;

#[derive(Debug, Clone, Args, Default)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub net: TargetArgs,
    /// The year: with --month, that month's days; alone, that year's months [default: this
    /// month's days].
    #[arg(long, value_name = "Y", value_parser = clap::value_parser!(i32).range(1970..=9999))]
    pub year: Option<i32>,
    /// The month (1–12) whose days to list (of --year, else of this year).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..=12))]
    pub month: Option<u32>,
    /// One JSON object per line: {ip, mac, child_id, year, month, day, kwh, verdict, reasons}.
    #[arg(long)]
    pub json: bool,
    /// Erase the statistics of the --host plugs (all their days and months) after a `y`
    /// confirmation that shows what will be lost.
    #[arg(long, requires = "host")]
    pub erase: bool,
    /// Refuse --erase (PLUGFLEET_READ_ONLY=1, or `read_only = true` in the config, sets it).
    #[arg(
        long,
        env = "PLUGFLEET_READ_ONLY",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub read_only: bool,
    /// UDP port of the newer devices' discovery probe (tests use a free port).
    #[arg(long, default_value_t = TDP_PORT, value_name = "P", hide = true)]
    pub tdp_port: u16,
    /// Local names by MAC (from the config file).
    #[arg(skip)]
    pub names: crate::fleet::identity::Names,
    /// Rating overrides per model (from the config file).
    #[arg(skip)]
    pub ratings: Overrides,
}

/// Now by this machine's clock, in Unix seconds (each plug's date: [`Device::date_at`]).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

impl HistoryArgs {
    /// What to list: `--month` (of `--year` or this year) → days, `--year` alone → months,
    /// neither → this month's days.
    pub fn listing(&self, today: Date) -> Listing {
        match (self.year, self.month) {
            (y, Some(m)) => Listing::Days(y.unwrap_or(today.year), m),
            (Some(y), None) => Listing::Months(y),
            (None, None) => Listing::Days(today.year, today.month),
        }
    }
}

/// The periods to fetch for a listing (the whole year's months too when listing days, so the
/// days can be checked against their month).
fn periods(what: Listing) -> (Vec<(i32, u32)>, Vec<i32>) {
    match what {
        Listing::Days(y, m) => (vec![(y, m)], vec![y]),
        Listing::Months(y) => (Vec::new(), vec![y]),
    }
}

/// The CSV header of the text form.
pub const CSV_HEADER: [&str; 9] = [
    "ip", "mac", "child_id", "year", "month", "day", "kwh", "verdict", "reasons",
];

/// One row as CSV fields (reasons joined with `; `).
pub fn csv_fields(r: &HistoryRow) -> [String; 9] {
    [
        r.ip.clone(),
        r.mac.clone(),
        r.child_id.clone().unwrap_or_default(),
        r.year.to_string(),
        r.month.to_string(),
        r.day.map(|d| d.to_string()).unwrap_or_default(),
        format!("{:.3}", r.kwh),
        r.verdict.as_str().to_owned(),
        crate::text::sanitize(&r.reasons.join("; ")).into_owned(),
    ]
}

pub fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = discovery_config(&args.net)?;
    cfg.tdp_port = args.tdp_port;
    cfg.validate(args.net.force)?;
    if args.erase && args.read_only {
        eprintln!("plugfleet: read-only mode: --erase refused, nothing was sent");
        return Ok(ExitCode::from(2));
    }
    if args.erase && (args.year.is_some() || args.month.is_some()) {
        return Err(UsageError(
            "--erase erases every day and month a plug keeps: it takes no --year or --month".into(),
        )
        .into());
    }
    let hosts: Vec<IpAddr> = cfg.hosts.iter().map(|h| IpAddr::V4(*h)).collect();
    let client = ClientConfig::with_timeout(cfg.port, cfg.timeout);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut fleet = Fleet::new(Instant::now());
    let report = rt.block_on(crate::cmd::status::round(
        &mut fleet,
        cfg,
        client,
        &args.ratings,
        &args.names,
    ))?;
    for ip in &report.silent_hosts {
        eprintln!("plugfleet: {ip}: {}", report.reason_for(*ip));
    }
    let now_s = unix_now();
    let hist_cfg = HistoryConfig {
        client,
        ..HistoryConfig::default()
    };
    let keys: Vec<String> = fleet
        .by_address()
        .into_iter()
        .filter(|d| d.is_online() && !metered(d).is_empty())
        .filter(|d| !args.erase || hosts.contains(&d.addr.ip()))
        .map(|d| d.key.clone())
        .collect();
    let mut failed = false;
    // What each device lists: "this month" is the month on its own calendar.
    let mut listed: Vec<(String, Listing)> = Vec::with_capacity(keys.len());
    for key in &keys {
        let Some(addr) = fleet.get(key).map(|d| d.addr) else {
            continue;
        };
        let clock = rt.block_on(clock_of(addr, &client));
        if let Some(c) = clock {
            fleet.learn_clock(key, c, now_s);
        }
        let Some(d) = fleet.get(key) else { continue };
        let today = d.date_at(now_s);
        let what = if args.erase {
            Listing::Days(today.year, today.month)
        } else {
            args.listing(today)
        };
        listed.push((key.clone(), what));
        let (months, years) = periods(what);
        let job = HistoryJob {
            key: key.clone(),
            addr: d.addr,
            meters: metered(d),
            months,
            years,
        };
        for r in rt.block_on(fetch_meters(&job, &hist_cfg, clock)) {
            if let Some(e) = r.first_error() {
                failed = true;
                let who = r
                    .child
                    .as_deref()
                    .map(|c| format!(" outlet {c}"))
                    .unwrap_or_default();
                eprintln!("plugfleet: {}{who}: history: {e}", r.addr.ip());
            }
            let text = |e: crate::net::NetError| e.to_string();
            fleet.apply_history(
                &r.key,
                r.addr,
                r.child.as_deref(),
                r.days
                    .into_iter()
                    .map(|(p, x)| (p, x.map_err(text)))
                    .collect(),
                r.months
                    .into_iter()
                    .map(|(p, x)| (p, x.map_err(text)))
                    .collect(),
                today,
                Instant::now(),
            );
        }
    }
    let devices: Vec<(&Device, Listing)> = listed
        .iter()
        .filter_map(|(k, what)| Some((fleet.get(k)?, *what)))
        .collect();
    let answered = fleet
        .devices
        .values()
        .any(|d| d.sysinfo.is_some() || d.tdp.is_some());
    if args.erase {
        return erase(&rt, &devices, client);
    }
    let mut out = std::io::stdout().lock();
    let mut n = 0usize;
    if args.json {
        for (d, what) in &devices {
            let limits = limits_of(d, &args.ratings);
            for r in rows(d, &limits, *what) {
                serde_json::to_writer(&mut out, &r)?;
                writeln!(out)?;
                n += 1;
            }
        }
    } else {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(CSV_HEADER)?;
        for (d, what) in &devices {
            let limits = limits_of(d, &args.ratings);
            for r in rows(d, &limits, *what) {
                w.write_record(csv_fields(&r))?;
                n += 1;
            }
        }
        w.flush()?;
    }
    out.flush()?;
    if !answered {
        eprintln!("plugfleet: no devices found");
    } else if devices.is_empty() {
        eprintln!("plugfleet: no metered device found (only plugs with a meter keep a history)");
    } else if n == 0 {
        eprintln!("plugfleet: the metered devices keep no data for that period");
    }
    Ok(
        if answered && report.silent_hosts.is_empty() && !failed && !devices.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn limits_of(d: &Device, ratings: &Overrides) -> crate::fleet::ratings::Limits {
    d.limits
        .clone()
        .unwrap_or_else(|| ratings.limits_for(d.model()))
}

/// What erasing `d` loses, one line: this month's days and this year's months with their kWh.
pub fn loss_line(d: &Device, today: Date) -> String {
    let mut days = 0usize;
    let mut day_kwh = 0.0;
    let mut months = 0usize;
    let mut month_kwh = 0.0;
    for child in metered(d) {
        if let Some(h) = crate::fleet::stats::history_of(d, child.as_deref()) {
            for (date, v) in &h.days {
                if (date.year, date.month) == (today.year, today.month) {
                    days += 1;
                    day_kwh += v;
                }
            }
            for ((y, _), v) in &h.months {
                if *y == today.year {
                    months += 1;
                    month_kwh += v;
                }
            }
        }
    }
    let alias = crate::text::printable(d.alias(), 40);
    let outlets = if d.is_strip() {
        format!(", {} outlets", d.outlets.len())
    } else {
        String::new()
    };
    format!(
        "{} {alias} ({}{outlets}): every day and month it keeps — this month {days} days \
         ({}), this year {months} months ({})",
        d.addr.ip(),
        crate::text::printable(d.model(), 24),
        crate::fleet::reading::Field::Total.fmt(day_kwh),
        crate::fleet::reading::Field::Total.fmt(month_kwh),
    )
}

/// Whether an answer to the erase question confirms it: `y` (or `Y`) only.
pub fn confirms(answer: &str) -> bool {
    matches!(answer.trim(), "y" | "Y")
}

/// `devices` with the month each listed: "this month" on its own calendar.
fn erase(
    rt: &tokio::runtime::Runtime,
    devices: &[(&Device, Listing)],
    client: ClientConfig,
) -> anyhow::Result<ExitCode> {
    if devices.is_empty() {
        eprintln!("plugfleet: no metered plug answered at the named hosts: nothing to erase");
        return Ok(ExitCode::FAILURE);
    }
    {
        let mut err = std::io::stderr().lock();
        writeln!(err, "This erases the energy statistics of:")?;
        for (d, what) in devices {
            let today = match *what {
                Listing::Days(year, month) => Date::new(year, month, 1),
                Listing::Months(year) => Date::new(year, 1, 1),
            };
            writeln!(err, "  {}", loss_line(d, today))?;
        }
        write!(
            err,
            "They cannot be restored. Type y to erase, anything else cancels: "
        )?;
        err.flush()?;
    }
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    if !matches!(read, Ok(n) if n > 0) || !confirms(&answer) {
        eprintln!("plugfleet: cancelled, nothing was erased");
        return Ok(ExitCode::FAILURE);
    }
    let mut ok = true;
    for (d, _) in devices {
        for child in metered(d) {
            let who = match &child {
                Some(c) => format!("{} outlet {c}", d.addr.ip()),
                None => d.addr.ip().to_string(),
            };
            let cfg = ClientConfig {
                port: d.addr.port(),
                ..client
            };
            match rt.block_on(erase_stats(d.addr, &cfg, child.as_deref())) {
                Ok(()) => println!("{who}: statistics erased"),
                Err(e) => {
                    ok = false;
                    eprintln!("plugfleet: {who}: erase failed: {e}");
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_follows_year_and_month() {
        let today = Date::new(2026, 12, 1);
        let mut a = HistoryArgs::default();
        assert_eq!(a.listing(today), Listing::Days(2026, 12));
        a.month = Some(3);
        assert_eq!(a.listing(today), Listing::Days(2026, 3));
        a.year = Some(2025);
        assert_eq!(a.listing(today), Listing::Days(2025, 3));
        a.month = None;
        assert_eq!(a.listing(today), Listing::Months(2025));
        assert_eq!(
            periods(Listing::Days(2025, 3)),
            (vec![(2025, 3)], vec![2025])
        );
    }

    #[test]
    fn only_y_confirms_an_erase() {
        assert!(confirms("y\n") && confirms(" Y "));
        for no in ["", "\n", "n", "yes", "yy", "ja", "y y", "Enter"] {
            assert!(!confirms(no), "{no:?}");
        }
    }
}
