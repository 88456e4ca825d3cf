//! The detail pane: complete hw_info, recent power, the energy history the plug keeps
//! ([`super::energy`]), and the plausibility findings.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};

use super::theme::{Theme, verdict_glyph};
use super::{age, clean};
use crate::app::rows::RowRef;
use crate::app::state::{App, Check, Link, Meter, Verdict};
use crate::protocol::access::Refusal;
use crate::text::{self, Unit};

fn kv<'a>(k: &str, v: String, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:>10} "), theme.dim()),
        Span::raw(v),
    ])
}

fn ago(d: std::time::Duration) -> String {
    match age(d).as_str() {
        "now" => "just now".into(),
        a => format!("{a} ago"),
    }
}

fn opt(v: Option<&str>) -> String {
    v.map(|s| clean(s, 64)).unwrap_or_else(|| "—".into())
}

/// `on, 100%, 2700 K, normal` / `off (comes on at 45%, hue 275° sat 50%)`.
fn light_text(l: &crate::protocol::LightState) -> String {
    let mut parts = Vec::new();
    if let Some(b) = l.brightness {
        parts.push(format!("{b}%"));
    }
    match (l.color_temp, l.hue, l.saturation) {
        (Some(k), _, _) if k > 0 => parts.push(format!("{k} K")),
        (_, Some(h), Some(sat)) => parts.push(format!("hue {h}° sat {sat}%")),
        _ => {}
    }
    if let Some(m) = &l.mode {
        parts.push(clean(m, 16));
    }
    let rest = parts.join(", ");
    match (l.on, l.from_default) {
        (true, _) => format!("on, {rest}"),
        (false, true) => format!("off (comes on at {rest})"),
        (false, false) if rest.is_empty() => "off".into(),
        (false, false) => format!("off, {rest}"),
    }
}

fn info_lines<'a>(app: &App, r: &RowRef<'_>, theme: &Theme) -> Vec<Line<'a>> {
    let d = r.device;
    let mut l = Vec::new();
    if let Some(o) = r.outlet {
        l.push(kv("outlet", clean(&o.id, 48), theme));
        l.push(kv("alias", clean(&o.alias, 48), theme));
        l.push(kv(
            "relay",
            if o.relay_on { "on" } else { "off" }.into(),
            theme,
        ));
        l.push(kv(
            "strip",
            format!("{} ({})", clean(d.alias(), 32), d.addr.ip()),
            theme,
        ));
    }
    let mut addr = d.addr.to_string();
    if let Some(p) = d.previous_addr {
        addr.push_str(&format!(" (was {p})"));
    }
    l.push(kv("address", addr, theme));
    let link = match &d.link {
        Link::Pending => "not polled yet".to_owned(),
        Link::Online => "online".to_owned(),
        Link::Failing(n) => format!("failing ({n} missed polls)"),
        Link::Offline(why) => format!("offline: {}", clean(why, 60)),
        Link::Updating => "updating firmware".to_owned(),
    };
    l.push(kv("link", link, theme));
    if r.outlet.is_none() {
        l.push(kv("kind", d.kind().label().into(), theme));
    }
    if let Some(s) = &d.sysinfo {
        if r.outlet.is_none() {
            l.push(kv("alias", clean(&s.alias, 48), theme));
        }
        l.push(kv("model", clean(&s.model, 32), theme));
        l.push(kv("hw_ver", clean(&s.hw_ver, 16), theme));
        l.push(kv("sw_ver", clean(&s.sw_ver, 48), theme));
        if let Some((from, to, at)) = &d.updated {
            l.push(kv(
                "firmware",
                format!(
                    "{} → {} {} (history split there)",
                    clean(from, 24),
                    clean(to, 24),
                    ago(app.now.saturating_duration_since(*at))
                ),
                theme,
            ));
        }
        l.push(kv("dev_name", opt(s.dev_name.as_deref()), theme));
        l.push(kv("type", opt(s.device_type.as_deref()), theme));
        l.push(kv("mac", clean(&s.mac, 24), theme));
        l.push(kv("deviceId", clean(&s.device_id, 64), theme));
        l.push(kv("hwId", opt(s.hw_id.as_deref()), theme));
        l.push(kv("fwId", opt(s.fw_id.as_deref()), theme));
        l.push(kv("oemId", opt(s.oem_id.as_deref()), theme));
        l.push(kv("feature", opt(s.feature.as_deref()), theme));
        if r.outlet.is_none() {
            let relay = match s.relay_on {
                Some(true) => "on",
                Some(false) => "off",
                None if d.is_strip() => "per outlet",
                None if s.light.is_some() => "— (a light: see light)",
                None => "—",
            };
            l.push(kv("relay", relay.into(), theme));
            if let Some(b) = s.brightness {
                l.push(kv("brightness", format!("{b}%"), theme));
            }
            match &s.light {
                Some(Ok(ls)) => {
                    l.push(kv("light", light_text(ls), theme));
                }
                Some(Err(e)) => l.push(Line::from(vec![
                    Span::styled(format!("{:>10} ", "light"), theme.dim()),
                    Span::styled(format!("not read: {}", clean(e, 60)), theme.error()),
                ])),
                None => {}
            }
        }
        if let Some(t) = s.on_time {
            l.push(kv("on_time", format!("{t} s"), theme));
        }
        l.push(kv(
            "rssi",
            s.rssi
                .map(|x| text::fmt(x as f64, Unit::Dbm))
                .unwrap_or_else(|| "—".into()),
            theme,
        ));
        if let Some(led) = s.led_off {
            l.push(kv("led", if led { "off" } else { "on" }.into(), theme));
        }
        if s.updating {
            l.push(kv("updating", "yes".into(), theme));
        }
        if !s.children.is_empty() {
            l.push(kv("outlets", s.children.len().to_string(), theme));
        }
        l.push(kv(
            "protocol",
            "legacy (XOR, port 9999 protocol)".into(),
            theme,
        ));
    }
    if let Some(t) = &d.tdp {
        if d.sysinfo.is_none() {
            l.push(kv("name", opt(t.device_name.as_deref()), theme));
            l.push(kv("model", clean(&t.model, 32), theme));
            l.push(kv("hw_ver", opt(t.hw_ver.as_deref()), theme));
            l.push(kv("sw_ver", opt(t.sw_ver.as_deref()), theme));
            l.push(kv("mac", clean(&t.mac, 24), theme));
            l.push(kv("deviceId", opt(t.device_id.as_deref()), theme));
            l.push(kv("type", clean(&t.device_type, 32), theme));
        }
        let port = t
            .http_port
            .map(|p| format!(", HTTP port {p}"))
            .unwrap_or_default();
        l.push(kv(
            "newer",
            format!("{} on UDP 20002{port}", t.protocol_label()),
            theme,
        ));
        if let Some(a) = d.access {
            let auth = match (a.transport, a.version) {
                (crate::protocol::access::Transport::Aes, _) => "AES securePassthrough",
                (_, crate::protocol::klap::AuthVersion::V1) => "KLAP v1",
                (_, crate::protocol::klap::AuthVersion::V2) => "KLAP v2",
            };
            let what = match a.dialect {
                crate::protocol::access::Dialect::Iot => "port-9999 JSON",
                crate::protocol::access::Dialect::Smart => "SMART JSON-RPC",
            };
            l.push(kv(
                "protocol",
                format!("{} ({auth}, {what})", a.label()),
                theme,
            ));
        }
        if let Some(r) = &d.refusal {
            let text = match r {
                Refusal::Unsupported(_) => format!("  {r} (listed, not read)"),
                _ => format!("  {r}: {}", r.hint()),
            };
            l.push(Line::styled(clean(&text, 110), theme.health(d.health())));
        } else if d.sysinfo.is_none() {
            l.push(Line::styled(
                if d.access.is_some() {
                    "  Speaks only the authenticated protocol (not pollable on 9999): read over it."
                } else {
                    "  Speaks only the authenticated protocol: listed, not pollable on 9999."
                },
                theme.health(crate::app::Health::Newer),
            ));
        }
    }
    let found: Vec<&str> = d.found_by.iter().map(String::as_str).collect();
    l.push(kv("found by", found.join(", "), theme));
    if let Some(t) = d.last_seen {
        l.push(kv("seen", ago(app.now.saturating_duration_since(t)), theme));
    }
    if let Some(e) = &d.last_error {
        l.push(Line::from(vec![
            Span::styled(format!("{:>10} ", "error"), theme.dim()),
            Span::styled(clean(e, 80), theme.error()),
        ]));
    }
    if let Some(c) = &d.conflict {
        l.push(kv("conflict", clean(c, 80), theme));
    }
    // A strip's own judgement (its total against the strip's rating, its flagged outlets):
    // the same verdict and reasons `status`, the records and /metrics carry.
    if r.outlet.is_none()
        && d.is_strip()
        && let Some(a) = &d.judged
    {
        l.push(Line::from(vec![
            Span::styled(format!("{:>10} ", "verdict"), theme.dim()),
            Span::styled(
                format!("{}{}", verdict_glyph(a.verdict).trim(), a.verdict.as_str()),
                theme.verdict(a.verdict),
            ),
        ]));
        for reason in &a.reasons {
            l.push(Line::styled(
                format!(
                    "  {} {}",
                    verdict_glyph(reason.severity),
                    clean(&reason.text, 100)
                ),
                theme.verdict(reason.severity),
            ));
        }
    }
    l
}

/// `check` is the judgement the row shows: a plug's device-level one (its meter's plus the
/// fleet-wide rules, such as the voltage against the fleet), an outlet's own meter's.
fn meter_lines<'a>(app: &App, m: &Meter, check: &Check, theme: &Theme) -> Vec<Line<'a>> {
    let mut l = Vec::new();
    // The pane opens on the finding when the row's verdict comes from an earlier reading:
    // the values below may all look fine.
    if let Some((v, at)) = m.sticky() {
        l.push(Line::styled(
            format!(
                "  {} row flagged by a {} reading {} (kept {} s):",
                verdict_glyph(v).trim(),
                v.as_str(),
                ago(app.now.saturating_duration_since(at)),
                crate::app::state::STICKY.as_secs()
            ),
            theme.verdict(v),
        ));
        if let Some((_, _, reason)) = m.finding(v) {
            l.push(Line::styled(
                format!("  • {}", clean(reason, 120)),
                theme.verdict(v),
            ));
        }
    }
    if let Some(c) = m.since_update() {
        l.push(Line::styled(
            format!(
                "  since the firmware update: {} flagged of {} readings",
                c.flagged(),
                c.total()
            ),
            if c.flagged() > 0 {
                theme.verdict(Verdict::Suspect)
            } else {
                theme.dim()
            },
        ));
    }
    if let Some(r) = &m.reading {
        let f = check.flags;
        let val = |name: &str, v: Option<f64>, unit: Unit, d: usize, verdict: Verdict| {
            let s = match v {
                Some(x) => format!("{}{}", text::fmt_with(x, unit, d), verdict_glyph(verdict)),
                None => "—".into(),
            };
            vec![
                Span::styled(format!("{name} "), theme.dim()),
                Span::styled(s, theme.verdict(verdict)),
                Span::raw("  "),
            ]
        };
        let mut spans = vec![Span::raw("  ")];
        spans.extend(val("P", r.power_w, Unit::Watt, 1, f.power));
        spans.extend(val("U", r.voltage_v, Unit::Volt, 1, f.voltage));
        spans.extend(val("I", r.current_a, Unit::Amp, 3, f.current));
        spans.extend(val("E", r.total_kwh, Unit::KilowattHour, 3, f.total));
        l.push(Line::from(spans));
        let verdict = check.verdict;
        let label = match verdict {
            Verdict::Ok => "ok",
            Verdict::Suspect => "SUSPECT",
            Verdict::Bogus => "BOGUS",
        };
        l.push(Line::from(vec![
            Span::styled("  verdict ", theme.dim()),
            Span::styled(
                match verdict_glyph(verdict).trim() {
                    "" => label.to_owned(),
                    g => format!("{g} {label}"),
                },
                theme.verdict(verdict),
            ),
            Span::styled(
                format!(
                    "   flagged {} of {} readings · units {:?}",
                    m.flagged(),
                    m.readings(),
                    r.scheme
                ),
                theme.dim(),
            ),
        ]));
        for reason in &check.reasons {
            l.push(Line::styled(
                format!("  • {}", clean(reason, 120)),
                theme.verdict(verdict),
            ));
        }
    } else {
        l.push(Line::styled("  no reading yet", theme.dim()));
    }
    if let Some(e) = &m.error {
        l.push(Line::styled(
            format!("  meter error: {}", clean(e, 80)),
            theme.error(),
        ));
    }
    let recent: Vec<_> = m.findings.iter().rev().take(5).collect();
    if !recent.is_empty() {
        l.push(Line::styled("  recent findings:", theme.dim()));
        for (at, v, reason) in recent {
            l.push(Line::from(vec![
                Span::styled(
                    format!("  {:>8} ", ago(app.now.saturating_duration_since(*at))),
                    theme.dim(),
                ),
                Span::styled(
                    format!("{} {}", verdict_glyph(*v), clean(reason, 100)),
                    theme.verdict(*v),
                ),
                Span::styled(
                    if m.updated_at.is_some_and(|u| *at < u) {
                        " (old fw)"
                    } else {
                        ""
                    },
                    theme.dim(),
                ),
            ]));
        }
    }
    l
}

pub fn render_detail(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(r) = app.selected() else {
        return;
    };
    let name = match r.alias() {
        "" => r.device.addr.ip().to_string(),
        a => clean(a, 40),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(format!(" {name} "), theme.title()))
        .title_bottom(Line::styled(" Esc/Enter close ", theme.dim()).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);

    // For a strip's parent row: the outlets' meters are shown on their own rows.
    let meter = r.meter();
    let meter_text = meter
        .map(|m| {
            // A plug's row is judged at the device (its meter and the fleet-wide rules): the
            // pane shows that same judgement. An outlet's row is its own meter's.
            let check = if r.outlet.is_none() && r.device.judged.is_some() {
                r.device.check()
            } else {
                m.check.clone()
            };
            meter_lines(app, m, &check, theme)
        })
        .unwrap_or_default();
    let info = info_lines(app, &r, theme);
    let (info_area, meter_col) = if inner.width >= 100 && meter.is_some() {
        let [a, b] = Layout::horizontal([Constraint::Length(62), Constraint::Min(30)]).areas(inner);
        (a, b)
    } else if meter.is_some() {
        // Room for the energy history's charts too, when the pane is tall enough.
        let energy_h = super::energy::wanted(&r, inner.height / 2);
        let meter_h = (meter_text.len() as u16 + 2 + energy_h).min(inner.height * 2 / 3);
        let [a, b] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(meter_h)]).areas(inner);
        (a, b)
    } else {
        (inner, Rect::default())
    };
    frame.render_widget(Paragraph::new(info), info_area);
    if let Some(m) = meter {
        let spark_h = if meter_col.height >= 10 { 3 } else { 1 };
        let [t, s, rest] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(spark_h),
            Constraint::Min(0),
        ])
        .areas(meter_col);
        let data = m.power_sparkline(usize::from(s.width.max(1)));
        let max = data.iter().flatten().copied().max().unwrap_or(0);
        let flagged = data.iter().filter(|v| v.is_none()).count();
        let secs = app.settings.interval.as_secs_f64() * data.len() as f64;
        let mut title = format!(
            " power, last {} · max {max} W ",
            age(std::time::Duration::from_secs_f64(secs))
        );
        if flagged > 0 {
            title.push_str(&format!(
                "· {flagged} flagged shown as {} ",
                verdict_glyph(Verdict::Bogus)
            ));
        }
        frame.render_widget(Line::styled(title, theme.dim()), t);
        frame.render_widget(
            Sparkline::default()
                .data(data)
                .style(theme.sparkline())
                .absent_value_symbol(verdict_glyph(Verdict::Bogus))
                .absent_value_style(theme.verdict(Verdict::Bogus)),
            s,
        );
        // The energy history the plug keeps (issue 16), between the power and the findings.
        let energy_h = super::energy::wanted(&r, rest.height.saturating_sub(2));
        let [energy, rest] =
            Layout::vertical([Constraint::Length(energy_h), Constraint::Min(0)]).areas(rest);
        super::energy::render(frame, energy, app, &r, theme);
        frame.render_widget(Paragraph::new(meter_text).wrap(Wrap { trim: false }), rest);
    }
}
