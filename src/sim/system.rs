//! The `system` module of a simulated plug: `get_sysinfo` (the profile's template with this
//! plug's identity and state), relay, alias, LED, reboot and reset; the firmware methods are
//! handed to `flash.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::load;
use super::outlets::{Ctx, Outlet};
use super::plug::{Cause, Outage, PlugShared};
use super::reply::{err, ok, round};

impl PlugShared {
    pub(crate) fn system(
        self: &Arc<Self>,
        method: &str,
        args: &Value,
        ctx: &Ctx,
        now: f64,
    ) -> Value {
        match method {
            "get_sysinfo" => self.sysinfo(now),
            // A bulb or light strip has no relay: it is switched by its lighting service.
            "set_relay_state" if self.id.profile.is_light() => err(-2, "member not support"),
            "set_relay_state" => {
                let Some(on) = args.get("state").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                let mut st = self.lock();
                let targets = match ctx {
                    Ctx::Bad => return err(-14, "entry not exist"),
                    Ctx::Children(ix) => ix.clone(),
                    Ctx::None => (0..st.outlets.len()).collect(),
                };
                for i in targets {
                    if let Some(o) = st.outlets.get_mut(i) {
                        o.set_relay(on != 0, now);
                    }
                }
                ok()
            }
            "set_dev_alias" => {
                let Some(alias) = args.get("alias").and_then(Value::as_str) else {
                    return err(-3, "invalid argument");
                };
                if alias.chars().count() > 64 {
                    return err(-3, "invalid argument");
                }
                let mut st = self.lock();
                match ctx {
                    Ctx::Bad => return err(-14, "entry not exist"),
                    Ctx::Children(ix) => {
                        for &i in ix {
                            if let Some(o) = st.outlets.get_mut(i) {
                                o.alias = alias.to_owned();
                            }
                        }
                    }
                    Ctx::None => st.alias = alias.to_owned(),
                }
                ok()
            }
            "set_led_off" => {
                let Some(off) = args.get("off").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                self.lock().led_off = off != 0;
                ok()
            }
            "reboot" | "reset" => {
                let delay = args.get("delay").and_then(Value::as_u64).unwrap_or(1);
                let cause = if method == "reset" {
                    Cause::Reset
                } else {
                    Cause::Reboot
                };
                self.schedule_outage(Outage {
                    after: self.id.scaled(Duration::from_secs(delay.min(3600))),
                    down: self
                        .id
                        .scaled(Duration::from_secs(self.id.profile.reboot_time_s)),
                    cause,
                });
                ok()
            }
            "download_firmware" => self.start_download(args),
            "get_download_state" => self.download_state(),
            "flash_firmware" => self.flash(),
            _ => err(-2, "member not support"),
        }
    }

    /// The `get_sysinfo` object: the profile's template with this plug's identity and state.
    pub(crate) fn sysinfo(&self, now: f64) -> Value {
        let p = self.id.profile;
        let mut s = p.sysinfo.clone();
        let bare_mic = s
            .get("mic_mac")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.contains(':'));
        let st = self.lock();
        let mut set = |k: &str, v: Value| {
            if s.contains_key(k) {
                s.insert(k.into(), v);
            }
        };
        set("alias", json!(st.alias));
        set("deviceId", json!(self.id.device_id));
        set("hwId", json!(self.id.hw_id));
        set("oemId", json!(self.id.oem_id));
        set("mac", json!(self.id.mac));
        // Bulbs: `mic_mac`, as the template spells it (bare hex or colon-separated).
        let mic = if bare_mic {
            self.id.mac.replace(':', "")
        } else {
            self.id.mac.clone()
        };
        set("mic_mac", json!(mic));
        set("sw_ver", json!(st.sw_ver));
        set("led_off", json!(u8::from(st.led_off)));
        set("updating", json!(0));
        let jitter = (load::unit(self.id.seed, (now / 5.0) as u64) * 5.0) as i64 - 2;
        set("rssi", json!(self.id.rssi + jitter));
        set("latitude", json!(round(self.id.latitude, 6)));
        set("longitude", json!(round(self.id.longitude, 6)));
        set(
            "latitude_i",
            json!((self.id.latitude * 10_000.0).round() as i64),
        );
        set(
            "longitude_i",
            json!((self.id.longitude * 10_000.0).round() as i64),
        );
        let on_time = |o: &Outlet| {
            if o.relay_on {
                (now - o.on_since).max(0.0) as i64
            } else {
                0
            }
        };
        if p.is_strip() {
            let children: Vec<Value> = st
                .outlets
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    json!({"id": self.id.child_id(i), "state": u8::from(o.relay_on),
                        "alias": o.alias, "on_time": on_time(o), "next_action": {"type": -1}})
                })
                .collect();
            s.insert("child_num".into(), json!(children.len()));
            s.insert("children".into(), Value::Array(children));
        } else if let Some(o) = st.outlets.first() {
            set("relay_state", json!(u8::from(o.relay_on)));
            set("on_time", json!(on_time(o)));
            set("brightness", json!(st.brightness));
            if p.is_light() {
                s.insert(
                    "light_state".into(),
                    super::light::light_state(p, o.relay_on, st.brightness),
                );
            }
        }
        s.insert("err_code".into(), json!(0));
        Value::Object(s)
    }
}
