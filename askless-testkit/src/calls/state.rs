//! The call state and the rules of each call route.

use std::collections::BTreeMap;

use askless_protocol::{AsklessErrorCode, ErrorBody, UserId, routes};
use serde_json::{Map, Value, json};

use super::{CALL_NOT_AVAILABLE_DESCRIPTION, CallEffect};

/// The call-signalling state of one mock server, with the rules of the internal call routes.
///
/// See the [module documentation](crate::calls) for the state it keeps and the contract of its
/// methods. A new value contains no call.
#[derive(Debug, Default, Clone)]
pub struct CallSignalling {
    /// `signal[from→to]`, keyed by the JavaScript property keys of both ids.
    signal: BTreeMap<(String, String), Map<String, Value>>,
    /// `ice[from→to]`, keyed like `signal`.
    ice: BTreeMap<(String, String), Value>,
    /// `pending[callee]`: callers whose request is unanswered, oldest first.
    pending: BTreeMap<String, Vec<UserId>>,
    /// Users whose peer's listen-for-a-call stream stopped; one entry per occurrence.
    alone: Vec<UserId>,
}

/// Orders effects the way the reference server emits them: stop-listening events first.
#[derive(Debug, Default)]
struct Effects {
    stops: Vec<CallEffect>,
    rest: Vec<CallEffect>,
}

impl Effects {
    fn push(&mut self, effect: CallEffect) {
        match effect {
            CallEffect::StopListeningAll { .. } => self.stops.push(effect),
            _ => self.rest.push(effect),
        }
    }

    fn into_vec(self) -> Vec<CallEffect> {
        let mut all = self.stops;
        all.extend(self.rest);
        all
    }
}

impl CallSignalling {
    /// Creates an empty call state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the handler of the CREATE call route `route` for the authenticated `user`.
    ///
    /// Returns `None` when `route` is not a CREATE call route. The effects always contain
    /// exactly one of [`CallEffect::Respond`], [`CallEffect::Fail`] or
    /// [`CallEffect::NoResponse`].
    pub fn handle_create(&mut self, route: &str, user: &UserId, body: &Value) -> Option<Vec<CallEffect>> {
        let effects = match route {
            routes::CALL_REQUEST => self.request(user, body),
            routes::CALL_RESPONSE => self.respond(user, body),
            routes::ICE_CANDIDATE_LIST => self.publish_ice_candidates(user, body),
            routes::CALL_CLOSE => self.close(user, body),
            _ => return None,
        };
        Some(effects)
    }

    /// Computes the value of the READ call route `route` for `user` (the listening or reading
    /// user, `None` when not authenticated) and the request `params`.
    ///
    /// Returns `None` when `route` is not a READ call route, and also when the reference
    /// server's handler throws: a listen-for-a-call or ICE-candidate-list read whose `params`
    /// is not a JSON object. The engine then sends nothing for that value.
    pub fn read(&self, route: &str, user: Option<&UserId>, params: &Value) -> Option<Value> {
        match route {
            routes::CALL_RECEIVE => self.receive_value(user),
            routes::LISTEN_FOR_A_CALL => {
                let params = params.as_object()?;
                Some(self.listen_for_a_call_value(user, params))
            }
            routes::ICE_CANDIDATE_LIST => {
                let params = params.as_object()?;
                Some(self.ice_candidate_list_value(user, params))
            }
            _ => None,
        }
    }

    /// Runs the "client starts listening" hook: `user` started listening to `route` with
    /// `params`, after its first value was sent.
    ///
    /// On the listen-for-a-call route this means `user` appears to the peer named in `params`:
    /// the peer leaves `alone` once and all its listen-for-a-call listeners are pushed
    /// `{"remoteUserIsConnected": true}`. Other routes have no hook.
    pub fn on_listen_started(
        &mut self,
        route: &str,
        user: Option<&UserId>,
        params: &Value,
    ) -> Vec<CallEffect> {
        if route != routes::LISTEN_FOR_A_CALL || user.is_none() {
            return Vec::new();
        }
        let Some(remote) = remote_user_id_of(params) else {
            return Vec::new();
        };
        remove_one_strict(&mut self.alone, &remote);
        vec![CallEffect::Notify {
            route: routes::LISTEN_FOR_A_CALL,
            to_user: remote,
            where_remote_user_id: None,
            value: Some(json!({"remoteUserIsConnected": true})),
        }]
    }

    /// Runs the "client stops listening" hook: a listener of `user` on `route` with `params` is
    /// being removed (ping omission, disconnection, replacement, or a refused listen).
    ///
    /// On the listen-for-a-call route with peer R:
    /// 1. if `user` is in `alone`, the call state of `user` and R is cleaned up. Otherwise R is
    ///    added to `alone` and all of R's listen-for-a-call listeners are pushed
    ///    `{"remoteUserIsConnected": false}`.
    /// 2. if a call request is pending between the two users in either direction, the state is
    ///    cleaned up for (user, R) and then (R, user), and after each clean-up the second user's
    ///    listeners about the first one are pushed `{"callClosed": true, "callAccepted": false}`.
    pub fn on_listener_removed(
        &mut self,
        route: &str,
        user: Option<&UserId>,
        params: &Value,
    ) -> Vec<CallEffect> {
        if route != routes::LISTEN_FOR_A_CALL {
            return Vec::new();
        }
        let (Some(user), Some(remote)) = (user, remote_user_id_of(params)) else {
            return Vec::new();
        };
        let mut effects = Effects::default();

        if contains_strict(&self.alone, user) {
            self.clean_up(user, &Remote::user(&remote), &mut effects);
        } else {
            self.alone.push(remote.clone());
            effects.push(CallEffect::Notify {
                route: routes::LISTEN_FOR_A_CALL,
                to_user: remote.clone(),
                where_remote_user_id: None,
                value: Some(json!({"remoteUserIsConnected": false})),
            });
        }

        if self.is_pending_between(user, &remote) {
            for (from, to) in [(user, &remote), (&remote, user)] {
                self.clean_up(from, &Remote::user(to), &mut effects);
                effects.push(CallEffect::Notify {
                    route: routes::LISTEN_FOR_A_CALL,
                    to_user: to.clone(),
                    where_remote_user_id: Some(from.clone()),
                    value: Some(json!({"callClosed": true, "callAccepted": false})),
                });
            }
        }
        effects.into_vec()
    }

    /// Runs the "on received" hook: `user` confirmed a pushed `value` of its listener on
    /// `route` with `params`.
    ///
    /// A listen-for-a-call value whose `callAccepted` is `false` (a rejection or a cancellation;
    /// compared like JavaScript's `==`) cleans up the call of `user` and the peer. An ICE-candidate-list value deletes the
    /// candidates the peer posted for `user`.
    pub fn on_value_acknowledged(
        &mut self,
        route: &str,
        user: Option<&UserId>,
        params: &Value,
        value: &Value,
    ) -> Vec<CallEffect> {
        let (Some(user), Some(params)) = (user, params.as_object()) else {
            return Vec::new();
        };
        let mut effects = Effects::default();
        match route {
            // The reference server tests `callAccepted == false`, so 0 and "" count as well.
            routes::LISTEN_FOR_A_CALL if loosely_false(value.get("callAccepted")) => {
                match Remote::of(params) {
                    Ok(remote) => self.clean_up(user, &remote, &mut effects),
                    Err(()) => {
                        tracing::debug!("listener params.remoteUserId has an unsupported type; no clean-up")
                    }
                }
            }
            routes::ICE_CANDIDATE_LIST => {
                self.ice
                    .remove(&(js_property_key(params.get("remoteUserId")), js_key(user)));
            }
            _ => {}
        }
        effects.into_vec()
    }

    /// Returns the callers waiting for a response from `callee`, oldest first, or `None` when
    /// `callee` never received a call request.
    pub fn pending_callers(&self, callee: &UserId) -> Option<&[UserId]> {
        self.pending.get(&js_key(callee)).map(Vec::as_slice)
    }

    /// Returns the users currently in `alone`, one entry per occurrence.
    pub fn alone(&self) -> &[UserId] {
        &self.alone
    }

    /// Returns the signalling object `from` posted for `to`, if any.
    pub fn signal(&self, from: &UserId, to: &UserId) -> Option<&Map<String, Value>> {
        self.signal.get(&(js_key(from), js_key(to)))
    }

    /// Returns the ICE candidate list `from` posted for `to`, if any.
    pub fn ice_candidates(&self, from: &UserId, to: &UserId) -> Option<&Value> {
        self.ice.get(&(js_key(from), js_key(to)))
    }

    /// `call/request` by `caller`: queue the call for the callee and store the request.
    ///
    /// The stored signal is the whole body without `remoteUserId`, as the reference server
    /// stores it. A body without `remoteUserId` queues the call under JavaScript's `undefined`
    /// key and still succeeds.
    fn request(&mut self, caller: &UserId, body: &Value) -> Vec<CallEffect> {
        let Some(body) = body.as_object() else {
            return no_response("the body is not an object");
        };
        let Ok(callee) = Remote::of(body) else {
            return no_response(UNSUPPORTED_REMOTE);
        };
        self.pending
            .entry(callee.key.clone())
            .or_default()
            .push(caller.clone());
        self.signal
            .insert((js_key(caller), callee.key.clone()), without_remote(body));

        let mut effects = vec![CallEffect::Respond {
            output: json!({"info": "You requested a call"}),
        }];
        if let Some(callee) = callee.id {
            effects.push(CallEffect::Notify {
                route: routes::CALL_RECEIVE,
                to_user: callee,
                where_remote_user_id: None,
                value: None,
            });
        }
        effects
    }

    /// `call/response` by `callee`: accept or reject the call of `body.remoteUserId`.
    fn respond(&mut self, callee: &UserId, body: &Value) -> Vec<CallEffect> {
        let Some(body) = body.as_object() else {
            return no_response("the body is not an object");
        };
        let Ok(Remote { id: Some(caller), .. }) = Remote::of(body) else {
            return no_response("body.remoteUserId is missing, null, or neither a number nor a string");
        };
        if caller.loosely_equals(callee) {
            return no_response("body.remoteUserId is the responding user's own id");
        }
        let accepted = is_truthy(body.get("callAccepted"));

        let signal = if accepted {
            if !self.pending.contains_key(&js_key(callee)) {
                return vec![CallEffect::Fail {
                    error: ErrorBody::new(
                        AsklessErrorCode::CallNotAvailableAnymore,
                        CALL_NOT_AVAILABLE_DESCRIPTION,
                    ),
                }];
            }
            without_remote(body)
        } else {
            let additional_data = match body.get("additionalData") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(value) => value.clone(),
            };
            let mut signal = Map::new();
            signal.insert("callClosed".into(), Value::Bool(true));
            signal.insert("callAccepted".into(), Value::Bool(false));
            signal.insert("additionalData".into(), additional_data);
            signal
        };
        self.signal.insert((js_key(callee), js_key(&caller)), signal);
        if let Some(callers) = self.pending.get_mut(&js_key(callee)) {
            remove_one_strict(callers, &caller);
        }

        let verb = if accepted { "accepted" } else { "rejected" };
        vec![
            CallEffect::Respond {
                output: json!({"info": format!("You (user {callee}) {verb} the call of user {caller}")}),
            },
            CallEffect::Notify {
                route: routes::LISTEN_FOR_A_CALL,
                to_user: caller,
                where_remote_user_id: None,
                value: None,
            },
        ]
    }

    /// `ice-candidate-list` create by `sender`: replace the list for the peer and tell it.
    fn publish_ice_candidates(&mut self, sender: &UserId, body: &Value) -> Vec<CallEffect> {
        let Some(body) = body.as_object() else {
            return no_response("the body is not an object");
        };
        let Ok(receiver) = Remote::of(body) else {
            return no_response(UNSUPPORTED_REMOTE);
        };
        let key = (js_key(sender), receiver.key.clone());
        match body.get("iceCandidateList") {
            Some(list) => {
                self.ice.insert(key, list.clone());
            }
            None => {
                self.ice.remove(&key);
            }
        }
        let mut effects = vec![CallEffect::Respond { output: json!({}) }];
        if let Some(receiver) = receiver.id {
            effects.push(CallEffect::Notify {
                route: routes::ICE_CANDIDATE_LIST,
                to_user: receiver,
                where_remote_user_id: None,
                value: None,
            });
        }
        effects
    }

    /// `call/close` by `user`: clean up and tell the peer's channel about `user`.
    fn close(&mut self, user: &UserId, body: &Value) -> Vec<CallEffect> {
        let Some(body) = body.as_object() else {
            return no_response("the body is not an object");
        };
        let Ok(remote) = Remote::of(body) else {
            return no_response(UNSUPPORTED_REMOTE);
        };
        let mut effects = Effects::default();
        self.clean_up(user, &remote, &mut effects);
        effects.push(CallEffect::Respond { output: json!({}) });
        if let Some(remote) = remote.id {
            effects.push(CallEffect::Notify {
                route: routes::LISTEN_FOR_A_CALL,
                to_user: remote,
                where_remote_user_id: Some(user.clone()),
                value: Some(json!({"callClosed": true})),
            });
        }
        effects.into_vec()
    }

    /// Clean-up of the call between `x` and `y`: stop-listening events for every
    /// listen-for-a-call listener of both users' first records, then the state of the pair is
    /// forgotten.
    fn clean_up(&mut self, x: &UserId, y: &Remote, effects: &mut Effects) {
        effects.push(CallEffect::StopListeningAll {
            user: x.clone(),
            route: routes::LISTEN_FOR_A_CALL,
        });
        if let Some(y) = &y.id {
            effects.push(CallEffect::StopListeningAll {
                user: y.clone(),
                route: routes::LISTEN_FOR_A_CALL,
            });
        }
        let (x_key, y_key) = (js_key(x), y.key.clone());
        for pair in [(x_key.clone(), y_key.clone()), (y_key.clone(), x_key.clone())] {
            self.signal.remove(&pair);
            self.ice.remove(&pair);
        }
        if let Some(callers) = self.pending.get_mut(&y_key) {
            remove_one_strict(callers, x);
        }
        if let Some(y) = &y.id {
            if let Some(callers) = self.pending.get_mut(&x_key) {
                remove_one_strict(callers, y);
            }
            // The reference server then compares each list with the other user's id using
            // JavaScript's `==`, which joins the list into a string first. So a list that is now
            // exactly `[y]` (after a repeated request) is deleted, as if it had never existed.
            if self
                .pending
                .get(&x_key)
                .is_some_and(|list| list_loosely_equals(list, y))
            {
                self.pending.remove(&x_key);
            }
        }
        if self
            .pending
            .get(&y_key)
            .is_some_and(|list| list_loosely_equals(list, x))
        {
            self.pending.remove(&y_key);
        }
        remove_one_strict(&mut self.alone, x);
        if let Some(y) = &y.id {
            remove_one_strict(&mut self.alone, y);
        }
    }

    fn is_pending_between(&self, a: &UserId, b: &UserId) -> bool {
        let waits_for = |callee: &UserId, caller: &UserId| {
            self.pending
                .get(&js_key(callee))
                .is_some_and(|callers| contains_strict(callers, caller))
        };
        waits_for(b, a) || waits_for(a, b)
    }

    /// Returns `None` when the first caller has no stored request, where the reference
    /// server's handler throws.
    fn receive_value(&self, user: Option<&UserId>) -> Option<Value> {
        let user_key = user.map_or_else(|| UNDEFINED.to_owned(), js_key);
        let Some(caller) = self.pending.get(&user_key).and_then(|callers| callers.first()) else {
            return Some(json!({"hasCallRequest": false}));
        };
        let signal = self.signal.get(&(js_key(caller), user_key))?;
        let mut value = Map::new();
        value.insert("hasCallRequest".into(), Value::Bool(true));
        value.insert("remoteUserId".into(), caller.to_value());
        for (key, field) in signal {
            value.insert(key.clone(), field.clone());
        }
        Some(Value::Object(value))
    }

    fn listen_for_a_call_value(&self, user: Option<&UserId>, params: &Map<String, Value>) -> Value {
        let remote = params.get("remoteUserId");
        let user_key = user.map_or_else(|| UNDEFINED.to_owned(), js_key);
        let mut value = Map::new();
        if let Some(signal) = self.signal.get(&(js_property_key(remote), user_key)) {
            value.extend(signal.clone());
        }
        if let Some(remote) = remote {
            value.insert("remoteUserId".into(), remote.clone());
        }
        Value::Object(value)
    }

    fn ice_candidate_list_value(&self, user: Option<&UserId>, params: &Map<String, Value>) -> Value {
        let remote = params.get("remoteUserId");
        let user_key = user.map_or_else(|| UNDEFINED.to_owned(), js_key);
        let mut value = Map::new();
        if let Some(remote) = remote {
            value.insert("remoteUserId".into(), remote.clone());
        }
        let list = match self.ice.get(&(js_property_key(remote), user_key)) {
            None | Some(Value::Null) => json!([]),
            Some(list) => list.clone(),
        };
        value.insert("iceCandidateList".into(), list);
        Value::Object(value)
    }
}

/// Reason logged when `remoteUserId` has a type the mock does not follow JavaScript with.
// NOTE: the reference server carries on with such a value, where a boolean even compares
// loosely equal to the user ids 0 and 1. The mock follows only numbers, strings, null and a
// missing member.
const UNSUPPORTED_REMOTE: &str = "body.remoteUserId is neither a number, a string nor null";

/// The property key JavaScript uses for `undefined`.
const UNDEFINED: &str = "undefined";

/// The `remoteUserId` of a body: its JavaScript property key, and the user id when it is one.
#[derive(Debug, Clone)]
struct Remote {
    key: String,
    id: Option<UserId>,
}

impl Remote {
    /// Reads `remoteUserId`; `Err` for a boolean, array or object.
    fn of(object: &Map<String, Value>) -> Result<Remote, ()> {
        match object.get("remoteUserId") {
            None | Some(Value::Null) => Ok(Remote {
                key: js_property_key(object.get("remoteUserId")),
                id: None,
            }),
            Some(value) => {
                let id = UserId::from_value(value).ok_or(())?;
                Ok(Remote {
                    key: js_key(&id),
                    id: Some(id),
                })
            }
        }
    }

    fn user(id: &UserId) -> Remote {
        Remote {
            key: js_key(id),
            id: Some(id.clone()),
        }
    }
}

/// Returns the body without `remoteUserId`, which is what the reference server stores.
fn without_remote(body: &Map<String, Value>) -> Map<String, Value> {
    let mut stored = body.clone();
    stored.remove("remoteUserId");
    stored
}

/// Converts an optional JSON value to the property key JavaScript uses for it in a template
/// string (`undefined` for a missing value).
fn js_property_key(value: Option<&Value>) -> String {
    match value {
        None => UNDEFINED.to_owned(),
        Some(Value::Null) => "null".to_owned(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::Number(number)) => js_key(&UserId::Number(number.clone())),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Null => String::new(),
                other => js_property_key(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(_)) => "[object Object]".to_owned(),
    }
}

/// Compares a list of user ids with a user id like JavaScript's `==`: the list becomes its
/// elements joined by commas, then that string is compared with the id.
fn list_loosely_equals(list: &[UserId], id: &UserId) -> bool {
    let joined = list.iter().map(js_key).collect::<Vec<_>>().join(",");
    let empty = joined.is_empty();
    UserId::String(joined).loosely_equals(id) || (empty && number_is_zero(id))
}

fn number_is_zero(id: &UserId) -> bool {
    matches!(id, UserId::Number(number) if number.as_f64() == Some(0.0))
}

/// Returns whether `value == false` holds in JavaScript, for the values a client can send.
fn loosely_false(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => !flag,
        Some(Value::Number(number)) => number.as_f64() == Some(0.0),
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            trimmed.is_empty() || trimmed.parse::<f64>().is_ok_and(|number| number == 0.0)
        }
        _ => false,
    }
}

fn no_response(reason: &'static str) -> Vec<CallEffect> {
    vec![CallEffect::NoResponse { reason }]
}

/// Reads `remoteUserId` from a body or params object.
fn remote_user_id_of(object: &Value) -> Option<UserId> {
    object.get("remoteUserId").and_then(UserId::from_value)
}

/// Converts `id` to the property key JavaScript uses for it: `2` and `"2"` both become `"2"`.
fn js_key(id: &UserId) -> String {
    match id {
        UserId::Number(number) => match number.as_f64() {
            Some(float) if float.fract() == 0.0 && float.abs() < 1e15 => format!("{}", float as i64),
            _ => number.to_string(),
        },
        UserId::String(text) => text.clone(),
    }
}

/// Compares two user ids like JavaScript's `===`: the same type and the same value.
fn strictly_equals(a: &UserId, b: &UserId) -> bool {
    match (a, b) {
        (UserId::Number(a), UserId::Number(b)) => a.as_f64() == b.as_f64(),
        (UserId::String(a), UserId::String(b)) => a == b,
        _ => false,
    }
}

fn contains_strict(list: &[UserId], id: &UserId) -> bool {
    list.iter().any(|entry| strictly_equals(entry, id))
}

fn remove_one_strict(list: &mut Vec<UserId>, id: &UserId) {
    if let Some(index) = list.iter().position(|entry| strictly_equals(entry, id)) {
        list.remove(index);
    }
}

/// Returns the JavaScript truthiness of an optional JSON value (`undefined` is `None`).
fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number
            .as_f64()
            .is_some_and(|float| float != 0.0 && !float.is_nan()),
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}
