//! Reduction of client frames to their request sequence, to compare the frames an example sends
//! with a recorded session of the Flutter app against the real example server.
//!
//! A request is reduced to its message kind, route, the shape of its params and body (JSON
//! types with object keys, values left out) and the keys of its credential. Pings,
//! confirmations of receipt, ids and timing are left out, because they differ from run to run.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use askless_testkit::{ConnectionId, Direction, ServerHandle};
use serde_json::Value;

/// One request a client sent, reduced to what the comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestShape {
    /// The `requestType`, such as `LISTEN` or `CREATE`.
    pub kind: String,
    /// The `route`, for requests that have one.
    pub route: Option<String>,
    /// The shape of `params` (see [`shape_of`]), `absent` when the frame has none.
    pub params: String,
    /// The shape of `body`, `absent` when the frame has none.
    pub body: String,
    /// The keys of the credential of an AUTHENTICATE, sorted; empty for other requests.
    pub credential_keys: Vec<String>,
}

impl fmt::Display for RequestShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(route) = &self.route {
            write!(f, " {route}")?;
        }
        write!(f, " params={} body={}", self.params, self.body)?;
        if self.kind == "AUTHENTICATE" {
            write!(f, " credential keys={:?}", self.credential_keys)?;
        }
        Ok(())
    }
}

/// Returns the shape of a JSON value: `null`, `bool`, `number`, `string`, `[]` for an empty
/// array, `[<shape of the first item>]`, or `{key:<shape>,…}` with the keys sorted.
pub fn shape_of(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "bool".to_owned(),
        Value::Number(_) => "number".to_owned(),
        Value::String(_) => "string".to_owned(),
        Value::Array(items) => match items.first() {
            Some(first) => format!("[{}]", shape_of(first)),
            None => "[]".to_owned(),
        },
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{key}:{}", shape_of(&members[key])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

/// Reduces one client frame to its request, or `None` for what the comparison leaves out:
/// pings, confirmations of receipt and frames that are not a JSON object.
pub fn reduce_client_frame(frame: &Value) -> Option<RequestShape> {
    let object = frame.as_object()?;
    if object.contains_key("_class_type_pingpong") {
        return None;
    }
    let kind = object.get("requestType")?.as_str()?.to_owned();
    if kind == "CONFIRM_RECEIPT" {
        return None;
    }
    let shape_of_member = |name: &str| object.get(name).map_or_else(|| "absent".to_owned(), shape_of);
    let mut credential_keys: Vec<String> = object
        .get("credential")
        .and_then(Value::as_object)
        .map(|credential| credential.keys().cloned().collect())
        .unwrap_or_default();
    credential_keys.sort();
    Some(RequestShape {
        route: object.get("route").and_then(Value::as_str).map(str::to_owned),
        params: shape_of_member("params"),
        body: shape_of_member("body"),
        credential_keys,
        kind,
    })
}

/// Reads a recorded session (one JSON object per line, client-to-server frames with
/// `"dir":"c2s"`) and returns the requests of each client, by client label, in order.
///
/// Fails naming the line that is not a JSON object.
pub fn recorded_requests(jsonl: &str) -> anyhow::Result<BTreeMap<String, Vec<RequestShape>>> {
    let mut requests: BTreeMap<String, Vec<RequestShape>> = BTreeMap::new();
    for (index, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value = serde_json::from_str(line)
            .with_context(|| format!("line {} of the recorded session is not JSON", index + 1))?;
        if entry.get("dir").and_then(Value::as_str) != Some("c2s") {
            continue;
        }
        let Some(client) = entry.get("client").and_then(Value::as_str) else {
            continue;
        };
        let Some(request) = entry.get("json").and_then(reduce_client_frame) else {
            continue;
        };
        requests.entry(client.to_owned()).or_default().push(request);
    }
    Ok(requests)
}

/// Returns the requests a mock server received, per connection in accept order.
pub fn received_requests(server: &ServerHandle) -> Vec<Vec<RequestShape>> {
    let mut requests: BTreeMap<ConnectionId, Vec<RequestShape>> = BTreeMap::new();
    for frame in server.received_frames() {
        if frame.direction != Direction::Received {
            continue;
        }
        let entry = requests.entry(frame.connection).or_default();
        if let Some(request) = frame.json().as_ref().and_then(reduce_client_frame) {
            entry.push(request);
        }
    }
    requests.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_sorts_keys_and_drops_values() {
        let value = json!({"search": "", "reversed": false, "ids": [1, 2], "none": null});
        assert_eq!(
            shape_of(&value),
            "{ids:[number],none:null,reversed:bool,search:string}"
        );
    }

    #[test]
    fn pings_and_receipts_are_left_out() {
        let ping = json!({"_class_type_pingpong": "_", "listeningToRoutes": []});
        let receipt = json!({"requestType": "CONFIRM_RECEIPT", "serverId": "RES-1"});
        assert_eq!(reduce_client_frame(&ping), None);
        assert_eq!(reduce_client_frame(&receipt), None);
    }

    #[test]
    fn authenticate_keeps_credential_keys_only() {
        let frame = json!({
            "requestType": "AUTHENTICATE",
            "clientRequestId": "REQ-_1",
            "credential": {"Authorization": "Bearer abcd"}
        });
        let request = reduce_client_frame(&frame).unwrap();
        assert_eq!(request.credential_keys, vec!["Authorization".to_owned()]);
        assert!(!request.to_string().contains("abcd"), "{request}");
    }
}
