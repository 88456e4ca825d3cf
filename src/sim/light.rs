//! The lighting modules of a simulated bulb, light strip or dimmer:
//! `smartlife.iot.smartbulb.lightingservice` (`get_light_state`, `transition_light_state`),
//! `smartlife.iot.lightStrip` (`get_light_state`, `set_light_state`) and
//! `smartlife.iot.dimmer` (`set_brightness`, `get_dimmer_parameters`), shaped on the KL130,
//! KL430 and HS220 dumps. Switching a light on or off is its one outlet's relay; brightness
//! scales the load's power.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::plug::PlugShared;
use super::profile::Profile;
use super::reply::{err, with_ok};
use crate::protocol::request::{BULB_SERVICE, LIGHTSTRIP_SERVICE};

/// The dimmers' module.
pub(crate) const DIMMER: &str = "smartlife.iot.dimmer";

/// How much of the load's full power a dimmed device draws: a tenth at the least.
pub(crate) fn dim_factor(p: &Profile, brightness: u8) -> f64 {
    if p.is_light() || p.is_dimmer() {
        0.1 + 0.9 * f64::from(brightness.min(100)) / 100.0
    } else {
        1.0
    }
}

/// A light's `light_state`: when on, the template's colour with this brightness; when off,
/// `on_off: 0` and the state it comes on with under `dft_on_state` (as real bulbs answer).
pub(crate) fn light_state(p: &Profile, on: bool, brightness: u8) -> Value {
    let template = p
        .sysinfo
        .get("light_state")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut state: Map<String, Value> = template
        .get("dft_on_state")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or(template);
    state.remove("on_off");
    state.remove("dft_on_state");
    state.insert("brightness".into(), json!(brightness));
    if on {
        state.insert("on_off".into(), json!(1));
        Value::Object(state)
    } else {
        json!({"on_off": 0, "dft_on_state": state})
    }
}

impl PlugShared {
    /// `on` and brightness of the light (its one outlet's relay).
    fn light_now(&self) -> (bool, u8) {
        let st = self.lock();
        let on = st.outlets.first().is_some_and(|o| o.relay_on);
        (on, st.brightness)
    }

    pub(crate) fn light(
        self: &Arc<Self>,
        module: &str,
        method: &str,
        args: &Value,
        now: f64,
    ) -> Value {
        let p = self.id.profile;
        let set = match (module, method) {
            (_, "get_light_state") => false,
            (BULB_SERVICE, "transition_light_state") => true,
            (LIGHTSTRIP_SERVICE, "set_light_state") => true,
            _ => return err(-2, "member not support"),
        };
        if set {
            let Some(args) = args.as_object() else {
                return err(-3, "invalid argument");
            };
            let on = match args.get("on_off") {
                None => None,
                Some(v) => match v.as_i64() {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => return err(-3, "invalid argument"),
                },
            };
            let brightness = match args.get("brightness") {
                None => None,
                Some(v) => match v.as_u64().filter(|b| *b <= 100) {
                    Some(b) => Some(b as u8),
                    None => return err(-3, "invalid argument"),
                },
            };
            let mut st = self.lock();
            if let Some(b) = brightness {
                st.brightness = b;
            }
            if let Some(on) = on
                && let Some(o) = st.outlets.first_mut()
            {
                o.set_relay(on, now);
            }
        }
        let (on, b) = self.light_now();
        with_ok(light_state(p, on, b))
    }

    pub(crate) fn dimmer(&self, method: &str, args: &Value) -> Value {
        match method {
            "set_brightness" => {
                let Some(b) = args
                    .get("brightness")
                    .and_then(Value::as_u64)
                    .filter(|b| *b <= 100)
                else {
                    return err(-3, "invalid argument");
                };
                self.lock().brightness = b as u8;
                json!({"err_code": 0})
            }
            // The HS220 dump's answer.
            "get_dimmer_parameters" => json!({"bulb_type": 1, "fadeOffTime": 1000,
                "fadeOnTime": 1000, "gentleOffTime": 10000, "gentleOnTime": 3000,
                "minThreshold": 0, "rampRate": 30, "err_code": 0}),
            _ => err(-2, "member not support"),
        }
    }
}
