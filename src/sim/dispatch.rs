//! A simulated plug's answer to one request object: every module and method in it, routed to
//! `system.rs`, `emeter.rs` and the small modules here (`time`, `cnCloud`, `schedule`, `netif`,
//! the strip's `get_relationship`). Plain JSON in, JSON out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::light::DIMMER;
use super::load;
use super::outlets::{self, Ctx};
use super::plug::PlugShared;
use super::profile::MeterScheme;
use super::reply::err;
use crate::protocol::reply::LIGHT_EMETER;
use crate::protocol::request::{BULB_SERVICE, LIGHTSTRIP_SERVICE};

impl PlugShared {
    /// Answers one request object (all modules and methods in it).
    pub fn respond(self: &Arc<Self>, req: &Value, now: f64) -> Value {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let Some(root) = req.as_object() else {
            return json!({"err_code": -1, "err_msg": "module not support"});
        };
        let ctx = outlets::context(&self.id, root);
        let mut out = Map::new();
        for (module, methods) in root {
            if module == "context" {
                continue;
            }
            let reply = match methods.as_object() {
                None => err(-3, "invalid argument"),
                Some(methods) => self.module(module, methods, &ctx, now),
            };
            out.insert(module.clone(), reply);
        }
        Value::Object(out)
    }

    fn module(
        self: &Arc<Self>,
        module: &str,
        methods: &Map<String, Value>,
        ctx: &Ctx,
        now: f64,
    ) -> Value {
        let p = self.id.profile;
        let supported = match module {
            "system" | "time" | "cnCloud" | "schedule" | "count_down" | "anti_theft" | "netif" => {
                true
            }
            "emeter" if p.meter == MeterScheme::Bulb => {
                return err(-2001, "Module not support");
            }
            "emeter" => p.has_meter(),
            LIGHT_EMETER => p.meter == MeterScheme::Bulb,
            BULB_SERVICE => p.is_light(),
            LIGHTSTRIP_SERVICE => p.is_lightstrip(),
            DIMMER => p.is_dimmer(),
            "smartlife.iot.smartpowerstrip.manage" => p.is_strip(),
            _ => false,
        };
        if !supported {
            return err(-1, "module not support");
        }
        let mut out = Map::new();
        for (method, args) in methods {
            let r = match module {
                "system" => self.system(method, args, ctx, now),
                "emeter" | LIGHT_EMETER => self.emeter(method, args, ctx, now),
                BULB_SERVICE | LIGHTSTRIP_SERVICE => self.light(module, method, args, now),
                DIMMER => self.dimmer(method, args),
                "time" => time_module(method, now),
                "cnCloud" => match method.as_str() {
                    "get_info" => json!({"binded": 0, "cld_connection": 0, "fwDlPage": "",
                        "fwNotifyType": 0, "illegalType": 0, "server": "n-devs.tplinkcloud.com",
                        "stopConnect": 0, "tcspInfo": "", "tcspStatus": 0, "username": "",
                        "err_code": 0}),
                    // No cloud connection: what a KP105 without cloud answers.
                    "get_intl_fw_list" => err(-7, "unknown error"),
                    _ => err(-2, "member not support"),
                },
                "schedule" | "count_down" | "anti_theft" => match method.as_str() {
                    "get_rules" => {
                        json!({"rule_list": [], "version": 2, "enable": 0, "err_code": 0})
                    }
                    "get_next_action" if module == "schedule" => json!({"type": -1, "err_code": 0}),
                    _ => err(-2, "member not support"),
                },
                "netif" => match method.as_str() {
                    "get_stainfo" => json!({"ssid": "plugfleet-sim", "key_type": 3,
                        "rssi": self.id.rssi, "err_code": 0}),
                    _ => err(-2, "member not support"),
                },
                _ => match method.as_str() {
                    "get_relationship" => {
                        let slots: Vec<Value> = (0..p.outlets.len())
                            .map(|i| json!({"child_id": self.id.child_id(i), "hw_slot": i}))
                            .collect();
                        json!({"child_num": slots.len(), "slots": slots, "err_code": 0})
                    }
                    _ => err(-2, "member not support"),
                },
            };
            out.insert(method.clone(), r);
        }
        Value::Object(out)
    }
}

fn time_module(method: &str, now: f64) -> Value {
    match method {
        "get_time" => {
            let day = (now / 86_400.0).floor() as i64;
            let (y, m, d) = load::civil_from_days(day);
            let s = now.rem_euclid(86_400.0) as u64;
            json!({"year": y, "month": m, "mday": d, "hour": s / 3600,
                "min": (s / 60) % 60, "sec": s % 60, "err_code": 0})
        }
        "get_timezone" => json!({"index": 39, "err_code": 0}),
        _ => err(-2, "member not support"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::sim::fault::FaultKind;
    use crate::sim::identity::Identity;
    use crate::sim::images::Accepted;
    use crate::sim::plug::Cause;
    use crate::sim::profile;

    const T0: f64 = 1_750_000_000.0;

    fn plug(profile: &str, faults: &[FaultKind]) -> Arc<PlugShared> {
        let p = profile::find(profile).expect("profile");
        let id = Identity::new(
            Ipv4Addr::new(127, 9, 9, 9),
            9999,
            20002,
            p,
            faults.to_vec(),
            0.01,
        );
        let (tx, _rx) = mpsc::unbounded_channel();
        Arc::new(PlugShared::new(
            id,
            Arc::new(Accepted::default()),
            tx,
            CancellationToken::new(),
            T0,
        ))
    }

    fn call(p: &Arc<PlugShared>, req: Value, now: f64) -> Value {
        p.respond(&req, now)
    }

    fn realtime(p: &Arc<PlugShared>, now: f64) -> crate::protocol::Realtime {
        crate::protocol::Realtime::from_reply(&call(p, json!({"emeter":{"get_realtime":{}}}), now))
            .expect("realtime")
    }

    #[test]
    fn readings_follow_the_relay_and_total_grows() {
        let p = plug("kp115-us-hw1", &[]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let a = realtime(&p, T0 + 1.0);
        assert!(a.power_w.expect("w") > 0.0);
        assert!((110.0..130.0).contains(&a.voltage_v.expect("v")));
        let b = realtime(&p, T0 + 1.0 + 3600.0);
        let grown = b.total_kwh.expect("t") - a.total_kwh.expect("t");
        let mean = p.lock().outlets[0].load.mean_w();
        assert!(grown > 0.0 && grown < 3.0 * mean / 1000.0 + 0.01, "{grown}");
        call(
            &p,
            json!({"system":{"set_relay_state":{"state":0}}}),
            T0 + 3602.0,
        );
        let c = realtime(&p, T0 + 7200.0);
        assert_eq!(c.power_w, Some(0.0));
        assert_eq!(c.current_a, Some(0.0));
        assert!(c.voltage_v.expect("v") > 100.0);
        assert!((c.total_kwh.expect("t") - b.total_kwh.expect("t")).abs() < 0.005);
        let info = crate::protocol::SysInfo::from_reply(&call(
            &p,
            json!({"system":{"get_sysinfo":{}}}),
            T0 + 7200.0,
        ))
        .expect("sysinfo");
        assert_eq!(info.relay_on, Some(false));
        assert_eq!(info.on_time, Some(0));
    }

    #[test]
    fn schemes_follow_the_profile() {
        use crate::protocol::UnitScheme;
        assert_eq!(
            realtime(&plug("hs110-eu-hw1", &[]), T0).scheme,
            UnitScheme::Base
        );
        assert_eq!(
            realtime(&plug("hs110-eu-hw4", &[]), T0).scheme,
            UnitScheme::Milli
        );
        let r = call(
            &plug("hs105-us-hw1", &[]),
            json!({"emeter":{"get_realtime":{}}}),
            T0,
        );
        assert_eq!(
            r,
            json!({"emeter":{"err_code":-1,"err_msg":"module not support"}})
        );
    }

    #[test]
    fn old_and_new_sysinfo_shapes() {
        let old = call(
            &plug("hs110-eu-hw1", &[]),
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        );
        let s = &old["system"]["get_sysinfo"];
        assert!(s["type"].is_string() && s["fwId"].is_string() && s["latitude"].is_f64());
        assert!(s.get("latitude_i").is_none() && s.get("mic_type").is_none());
        let new = call(
            &plug("hs110-eu-hw4", &[]),
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        );
        let s = &new["system"]["get_sysinfo"];
        assert!(s["mic_type"].is_string() && s["latitude_i"].is_i64() && s["status"] == "new");
        assert_eq!(s["deviceId"].as_str().expect("id").len(), 40);
    }

    #[test]
    fn reading_faults() {
        let p = plug("hs110-eu-hw4", &[FaultKind::Bogus28kw]);
        assert!(realtime(&p, T0).power_w.expect("w") >= 28_000.0);
        let p = plug("hs110-eu-hw4", &[FaultKind::Glitch28kw]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let w: Vec<f64> = (0..6)
            .map(|i| realtime(&p, T0 + f64::from(i)).power_w.expect("w"))
            .collect();
        assert_eq!(w.iter().filter(|x| **x >= 28_000.0).count(), 2, "{w:?}");
        let p = plug("hs110-eu-hw4", &[FaultKind::UnitScale]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let r = realtime(&p, T0 + 1.0);
        let raw = r.raw.to_value();
        assert!(raw.get("power").is_some() && raw.get("power_mw").is_none());
        let p2 = plug("hs110-eu-hw4", &[]);
        call(&p2, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let ok = realtime(&p2, T0 + 1.0);
        let ratio = r.power_w.expect("w") / ok.power_w.expect("w");
        assert!((999.0..1001.0).contains(&ratio), "{ratio}");
    }

    /// A faulty plug and a healthy twin (same address, so the same load), relay on at T0.
    fn twins(profile: &str, fault: FaultKind) -> (Arc<PlugShared>, Arc<PlugShared>) {
        let (bad, good) = (plug(profile, &[fault]), plug(profile, &[]));
        for p in [&bad, &good] {
            call(p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        }
        (bad, good)
    }

    #[test]
    fn quiet_faults_show_in_the_reply() {
        // stuck-meter: P, V and I repeat to the last digit while the healthy twin jitters.
        let (bad, good) = twins("hs110-eu-hw1", FaultKind::StuckMeter);
        let key = |r: &crate::protocol::Realtime| (r.power_w, r.voltage_v, r.current_a);
        let stuck: Vec<_> = (1..=12)
            .map(|k| key(&realtime(&bad, T0 + f64::from(k) * 10.0)))
            .collect();
        assert!(stuck.iter().all(|r| *r == stuck[0]), "{stuck:?}");
        assert!(stuck[0].0.expect("w") > 0.0);
        let live: Vec<_> = (1..=12)
            .map(|k| key(&realtime(&good, T0 + f64::from(k) * 10.0)))
            .collect();
        assert!(live.iter().any(|r| *r != live[0]), "{live:?}");
        // The counter still counts.
        let a = realtime(&bad, T0 + 200.0).total_kwh.expect("t");
        let b = realtime(&bad, T0 + 3800.0).total_kwh.expect("t");
        assert!(b > a, "{a} {b}");

        // counter-lag: the total grows at 30 % of the twin's.
        let (bad, good) = twins("hs110-eu-hw4", FaultKind::CounterLag);
        let grown = |p: &Arc<PlugShared>| {
            let a = realtime(p, T0 + 1.0).total_kwh.expect("t");
            realtime(p, T0 + 1.0 + 7200.0).total_kwh.expect("t") - a
        };
        let (lag, ok) = (grown(&bad), grown(&good));
        assert!(ok > 0.01, "{ok}");
        let ratio = lag / ok;
        assert!((0.25..0.35).contains(&ratio), "{lag} / {ok} = {ratio}");

        // voltage-drift:-6: the voltage reads 6 % low, the current stays true.
        let (bad, good) = twins("hs110-eu-hw1", FaultKind::VoltageDrift { pct: -6 });
        let (b, g) = (realtime(&bad, T0 + 5.0), realtime(&good, T0 + 5.0));
        let ratio = b.voltage_v.expect("v") / g.voltage_v.expect("v");
        assert!((ratio - 0.94).abs() < 1e-6, "{ratio}");
        assert_eq!(b.current_a, g.current_a);
        assert_eq!(b.power_w, g.power_w);

        // phantom-load: a few watts with the relay off; a healthy plug reads 0 W.
        let (bad, good) = twins("hs110-us-hw1", FaultKind::PhantomLoad);
        for p in [&bad, &good] {
            call(
                p,
                json!({"system":{"set_relay_state":{"state":0}}}),
                T0 + 1.0,
            );
        }
        let b = realtime(&bad, T0 + 2.0);
        assert!((3.0..5.0).contains(&b.power_w.expect("w")), "{b:?}");
        assert!(b.current_a.expect("a") > 0.02, "{b:?}");
        assert_eq!(realtime(&good, T0 + 2.0).power_w, Some(0.0));
    }

    #[test]
    fn strips_answer_per_outlet() {
        let p = plug("hs300-us-hw2", &[]);
        let id3 = p.id.child_id(3);
        let r = call(
            &p,
            json!({"context":{"child_ids":[id3]},"system":{"set_relay_state":{"state":0}}}),
            T0,
        );
        assert_eq!(r["system"]["set_relay_state"]["err_code"], 0);
        let info = crate::protocol::SysInfo::from_reply(&call(
            &p,
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        ))
        .expect("sysinfo");
        assert_eq!(info.children.len(), 6);
        assert!(!info.children[3].relay_on);
        let rt = call(
            &p,
            json!({"context":{"child_ids":[p.id.child_id(3)]},"emeter":{"get_realtime":{}}}),
            T0 + 1.0,
        );
        let rt = crate::protocol::Realtime::from_reply(&rt).expect("rt");
        assert_eq!(rt.slot_id, Some(3));
        assert_eq!(rt.power_w, Some(0.0));
        let bad = call(
            &p,
            json!({"context":{"child_ids":["NOPE"]},"emeter":{"get_realtime":{}}}),
            T0,
        );
        assert_eq!(bad["emeter"]["get_realtime"]["err_code"], -14);
        assert_eq!(bad["emeter"]["get_realtime"]["err_msg"], "entry not exist");
        let alias = call(
            &p,
            json!({"context":{"child_ids":["01"]},"system":{"set_dev_alias":{"alias":"TV"}}}),
            T0,
        );
        assert_eq!(alias["system"]["set_dev_alias"]["err_code"], 0);
        assert_eq!(p.lock().outlets[1].alias, "TV");
    }

    #[test]
    fn unknown_methods_and_modules() {
        let p = plug("hs100-us-hw2", &[]);
        let r = call(
            &p,
            json!({"system":{"frobnicate":{}},"smartlife.iot.dimmer":{"x":{}}}),
            T0,
        );
        assert_eq!(r["system"]["frobnicate"]["err_code"], -2);
        assert_eq!(r["system"]["frobnicate"]["err_msg"], "member not support");
        assert_eq!(r["smartlife.iot.dimmer"]["err_code"], -1);
        let r = call(&p, json!({"system":{"set_relay_state":{"state":"on"}}}), T0);
        assert_eq!(r["system"]["set_relay_state"]["err_code"], -3);
    }

    #[test]
    fn stats_are_plausible() {
        let p = plug("hs110-eu-hw4", &[]);
        let now = T0;
        let (y, m, d) = load::civil_from_days((now / 86_400.0).floor() as i64);
        let r = call(
            &p,
            json!({"emeter":{"get_daystat":{"year":y,"month":m}}}),
            now,
        );
        let days = crate::protocol::reply::parse_stats(&r, "get_daystat").expect("days");
        assert_eq!(days.len(), d as usize, "every day of this month so far");
        assert!(
            days.iter()
                .all(|e| e.energy_kwh >= 0.0 && e.energy_kwh < 100.0)
        );
        assert!(r["emeter"]["get_daystat"]["day_list"][0]["energy_wh"].is_i64());
        let r = call(&p, json!({"emeter":{"get_monthstat":{"year":y}}}), now);
        let months = crate::protocol::reply::parse_stats(&r, "get_monthstat").expect("m");
        assert!(!months.is_empty() && months.len() <= m as usize);
        let r = call(
            &p,
            json!({"emeter":{"get_daystat":{"year":y + 1,"month":1}}}),
            now,
        );
        assert_eq!(r["emeter"]["get_daystat"]["day_list"], json!([]));
        let float = plug("hs110-eu-hw1", &[]);
        let r = call(
            &float,
            json!({"emeter":{"get_daystat":{"year":y,"month":m}}}),
            now,
        );
        assert!(r["emeter"]["get_daystat"]["day_list"][0]["energy"].is_f64());
    }

    #[test]
    fn history_glitch_puts_one_bogus_day_in_this_month_until_erased() {
        let now = T0;
        let today = (now / 86_400.0).floor() as i64;
        let (y, m, _) = load::civil_from_days(today);
        assert_eq!(
            crate::sim::plug::glitch_day(today - 14),
            today - 14,
            "on the 1st: today"
        );
        let glitch_day = crate::sim::plug::glitch_day(today);
        let (gy, gm, gd) = load::civil_from_days(glitch_day);
        assert_eq!((gy, gm), (y, m), "always in this month");
        let days = |p: &Arc<PlugShared>| {
            let r = call(
                p,
                json!({"emeter":{"get_daystat":{"year":y,"month":m}}}),
                now,
            );
            crate::protocol::reply::parse_stats(&r, "get_daystat").expect("days")
        };
        let month = |p: &Arc<PlugShared>| {
            let r = call(p, json!({"emeter":{"get_monthstat":{"year":y}}}), now);
            let list = crate::protocol::reply::parse_stats(&r, "get_monthstat").expect("months");
            list.iter()
                .find(|e| e.month == i64::from(m))
                .map(|e| e.energy_kwh)
                .expect("this month")
        };
        let clean = plug("hs110-us-hw1", &[]);
        let glitchy = plug("hs110-us-hw1", &[FaultKind::HistoryGlitch]);
        let bogus: Vec<_> = days(&glitchy)
            .into_iter()
            .filter(|e| e.energy_kwh >= crate::sim::fault::HISTORY_GLITCH_KWH)
            .collect();
        assert_eq!(bogus.len(), 1);
        assert_eq!(bogus[0].day, Some(i64::from(gd)));
        assert!(
            days(&clean).iter().all(|e| e.energy_kwh < 100.0),
            "{:?}",
            days(&clean)
        );
        // The month figure carries the glitch too (the plug sums its own days).
        let sum: f64 = days(&glitchy).iter().map(|e| e.energy_kwh).sum();
        assert!(
            (month(&glitchy) - sum).abs() < 0.05,
            "{} vs {sum}",
            month(&glitchy)
        );
        let r = call(&glitchy, json!({"emeter":{"erase_emeter_stat":{}}}), now);
        assert_eq!(r["emeter"]["erase_emeter_stat"]["err_code"], 0);
        assert!(days(&glitchy).iter().all(|e| e.energy_kwh < 100.0));
    }

    #[test]
    fn hang_daystat_hangs_only_on_daystat() {
        let p = plug("hs110-us-hw1", &[FaultKind::HangDaystat]);
        assert!(p.hangs_on(&json!({"emeter":{"get_daystat":{"year":2026,"month":1}}})));
        assert!(p.hangs_on(
            &json!({"system":{"get_sysinfo":{}},"emeter":{"get_daystat":{"year":2026,"month":1}}})
        ));
        assert!(!p.hangs_on(&json!({"emeter":{"get_realtime":{}}})));
        assert!(!p.hangs_on(&json!({"emeter":{"get_monthstat":{"year":2026}}})));
        assert!(!plug("hs110-us-hw1", &[]).hangs_on(&json!({"emeter":{"get_daystat":{}}})));
    }

    #[test]
    fn premature_flash_is_refused_and_counted() {
        let p = plug("hs110-us-hw1", &[]);
        let r = call(&p, json!({"system":{"flash_firmware":{}}}), T0);
        assert_eq!(r["system"]["flash_firmware"]["err_code"], -5);
        assert_eq!(
            p.counters.premature_flash_attempts.load(Ordering::Relaxed),
            1
        );
        let r = call(&p, json!({"system":{"get_download_state":{}}}), T0);
        assert_eq!(r["system"]["get_download_state"]["err_code"], -7);
        let r = call(
            &p,
            json!({"system":{"download_firmware":{"url":"http://10.0.0.5/x.bin"}}}),
            T0,
        );
        assert_eq!(r["system"]["download_firmware"]["err_code"], -3);
    }

    #[test]
    fn coming_back_resets_total_and_applies_the_flash() {
        let p = plug("kp115-us-hw1", &[]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        assert!(realtime(&p, T0 + 3600.0).total_kwh.expect("t") > 0.0);
        p.went_offline(T0 + 3600.0);
        p.came_back(
            &Cause::Flash {
                sw_ver: "1.0.22 Build 240418 Rel.102311".into(),
            },
            T0 + 3700.0,
        );
        assert_eq!(realtime(&p, T0 + 3700.0).total_kwh, Some(0.0));
        assert_eq!(p.lock().sw_ver, "1.0.22 Build 240418 Rel.102311");
        let old = plug("kp115-us-hw1", &[FaultKind::OldVersion]);
        old.came_back(
            &Cause::Flash {
                sw_ver: "9.9.9 Build 1 Rel.1".into(),
            },
            T0,
        );
        assert_eq!(old.lock().sw_ver, old.id.profile.sw_ver());
    }

    #[test]
    fn reported_times_are_scaled_and_rounded_up() {
        let p = plug("hs110-us-hw1", &[]);
        assert_eq!(p.id.reported_secs(0), 0);
        assert_eq!(p.id.reported_secs(20), 1);
        assert_eq!(p.id.reported_secs(250), 3);
        assert_eq!(
            p.id.scaled(Duration::from_secs(20)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn identities_are_unique_per_address() {
        let p = profile::find("hs110-eu-hw1").expect("p");
        let a = Identity::new(Ipv4Addr::new(127, 0, 0, 2), 1, 1, p, vec![], 1.0);
        let b = Identity::new(Ipv4Addr::new(127, 0, 0, 3), 1, 1, p, vec![], 1.0);
        assert_ne!(a.mac, b.mac);
        assert_ne!(a.device_id, b.device_id);
        assert_eq!(a.mac, "50:C7:BF:00:00:02");
        assert_eq!(a.hw_id, b.hw_id, "same hardware SKU");
    }

    #[test]
    fn a_bulb_answers_its_lighting_service_and_its_own_meter() {
        use crate::protocol::{Kind, Realtime, SysInfo};
        let p = plug("kl130-eu-hw1", &[]);
        let on = call(
            &p,
            json!({BULB_SERVICE:{"transition_light_state":{"on_off":1,"brightness":100}}}),
            T0,
        );
        assert_eq!(on[BULB_SERVICE]["transition_light_state"]["on_off"], 1);
        assert_eq!(on[BULB_SERVICE]["transition_light_state"]["err_code"], 0);
        let r = call(
            &p,
            json!({"system":{"get_sysinfo":{}},LIGHT_EMETER:{"get_realtime":{}},"emeter":{"get_realtime":{}}}),
            T0 + 1.0,
        );
        let s = SysInfo::from_reply(&r).expect("sysinfo");
        assert_eq!(s.kind(), Kind::Bulb);
        assert_eq!(s.is_on(), Some(true));
        assert_eq!(s.mac.len(), 17);
        assert_eq!(r["emeter"]["err_code"], -2001, "bulbs have no `emeter`");
        let rt = Realtime::from_reply_in(&r, LIGHT_EMETER).expect("bulb meter");
        let w = rt.power_w.expect("power");
        assert!(w > 5.0 && w < 12.5, "{w} W");
        assert!(rt.voltage_v.is_none() && rt.total_kwh.is_some());
        // Off: the state it comes on with sits under dft_on_state, and it draws nothing.
        call(
            &p,
            json!({BULB_SERVICE:{"transition_light_state":{"on_off":0}}}),
            T0 + 2.0,
        );
        let r = call(
            &p,
            json!({"system":{"get_sysinfo":{}},LIGHT_EMETER:{"get_realtime":{}}}),
            T0 + 3.0,
        );
        let ls = &r["system"]["get_sysinfo"]["light_state"];
        assert_eq!(ls["on_off"], 0);
        assert_eq!(ls["dft_on_state"]["brightness"], 100);
        let rt = Realtime::from_reply_in(&r, LIGHT_EMETER).expect("bulb meter");
        assert_eq!(rt.power_w, Some(0.0));
        // Bad arguments and the light strip's module, which a bulb has not.
        let bad = call(
            &p,
            json!({BULB_SERVICE:{"transition_light_state":{"on_off":"on"}}}),
            T0,
        );
        assert_eq!(bad[BULB_SERVICE]["transition_light_state"]["err_code"], -3);
        let relay = call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        assert_eq!(
            relay["system"]["set_relay_state"]["err_code"], -2,
            "no relay"
        );
        let strip = call(
            &p,
            json!({LIGHTSTRIP_SERVICE:{"set_light_state":{"on_off":1}}}),
            T0,
        );
        assert_eq!(strip[LIGHTSTRIP_SERVICE]["err_code"], -1);
    }

    #[test]
    fn a_light_strip_and_a_dimmer() {
        use crate::protocol::{Kind, SysInfo};
        let p = plug("kl430-us-hw2", &[]);
        let r = call(
            &p,
            json!({LIGHTSTRIP_SERVICE:{"set_light_state":{"on_off":1,"brightness":40}}}),
            T0,
        );
        assert_eq!(r[LIGHTSTRIP_SERVICE]["set_light_state"]["brightness"], 40);
        let s = SysInfo::from_reply(&call(&p, json!({"system":{"get_sysinfo":{}}}), T0))
            .expect("sysinfo");
        assert_eq!(s.kind(), Kind::Lightstrip);
        assert_eq!(s.brightness_pct(), Some(40));
        assert_eq!(s.light_state().and_then(|l| l.hue), Some(194));

        let d = plug("hs220-us-hw1", &[]);
        let r = call(&d, json!({DIMMER:{"set_brightness":{"brightness":70}}}), T0);
        assert_eq!(r[DIMMER]["set_brightness"]["err_code"], 0);
        let bad = call(
            &d,
            json!({DIMMER:{"set_brightness":{"brightness":170}}}),
            T0,
        );
        assert_eq!(bad[DIMMER]["set_brightness"]["err_code"], -3);
        let r = call(
            &d,
            json!({"system":{"get_sysinfo":{}},"emeter":{"get_realtime":{}},BULB_SERVICE:{"get_light_state":{}}}),
            T0,
        );
        let s = SysInfo::from_reply(&r).expect("sysinfo");
        assert_eq!(s.kind(), Kind::Dimmer);
        assert_eq!(s.brightness, Some(70));
        assert_eq!(r["emeter"]["err_code"], -1);
        assert_eq!(r[BULB_SERVICE]["err_code"], -1);
    }
}
