//! Payloads of the WebRTC call signalling that travels over the internal call routes.
//!
//! Calls are signalled with ordinary create, read and listen requests on the routes named in
//! [`routes`](crate::routes). These types are the `body`, `params` and stream values of those
//! requests. Media never goes through the server.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::UserId;

/// The kind of a session description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// The caller's offer.
    Offer,
    /// The callee's answer.
    Answer,
}

/// A session description: `{"sdp": …, "type": "offer" | "answer"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// The SDP text.
    pub sdp: String,
    /// Offer or answer.
    #[serde(rename = "type")]
    pub sdp_type: SdpType,
}

/// An ICE candidate: `{"candidate": …, "id": <sdpMid>, "label": <sdpMLineIndex>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The candidate line, such as `candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host`.
    pub candidate: String,
    /// The media stream identification (`sdpMid`).
    #[serde(default)]
    pub id: Option<String>,
    /// The index of the media description (`sdpMLineIndex`).
    #[serde(default)]
    pub label: Option<u16>,
}

/// Body of a create on the call-request route, sent by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRequestBody {
    /// The callee.
    pub remote_user_id: UserId,
    /// The caller's offer.
    pub sdp: SessionDescription,
    /// Application data shown to the callee.
    #[serde(default)]
    pub additional_data: Map<String, Value>,
}

/// Body of a create on the call-response route, sent by the callee to accept or reject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallResponseBody {
    /// Whether the callee accepts.
    pub call_accepted: bool,
    /// The caller.
    pub remote_user_id: UserId,
    /// The callee's answer; present when accepting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<SessionDescription>,
    /// Application data shown to the caller.
    #[serde(default)]
    pub additional_data: Map<String, Value>,
}

/// A value of the call-receive stream: an incoming call for the listening user, or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReceiveValue {
    /// Whether a call is waiting for the listening user.
    pub has_call_request: bool,
    /// The caller, when a call is waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user_id: Option<UserId>,
    /// The caller's offer, when a call is waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<SessionDescription>,
    /// The caller's application data, when a call is waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Map<String, Value>>,
}

/// `params` of a listen on the listen-for-a-call or ICE-candidate-list routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteUserParams {
    /// The other participant of the call.
    pub remote_user_id: UserId,
}

/// A value of the listen-for-a-call stream, the per-peer signalling channel.
///
/// Every member is optional: the server sends the stored signal of the peer (offer, answer or
/// rejection, with `remoteUserId`) or one of the fixed values `{"remoteUserIsConnected": bool}`,
/// `{"callClosed": true, "callAccepted": false}` (cancelled) and `{"callClosed": true}` (hung up).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenForACallValue {
    /// The peer this channel is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user_id: Option<UserId>,
    /// The peer's offer (callee's view) or answer (caller's view after acceptance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<SessionDescription>,
    /// The peer's application data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Map<String, Value>>,
    /// Present once the callee answered: `true` accepted, `false` rejected or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_accepted: Option<bool>,
    /// `true` when the call ended (rejected, cancelled or hung up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_closed: Option<bool>,
    /// Whether the peer's signalling connection is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user_is_connected: Option<bool>,
}

/// Body of a create on the ICE-candidate-list route, and the value of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidateList {
    /// In a create: the peer to send the candidates to. In a stream value: the peer they came
    /// from.
    pub remote_user_id: UserId,
    /// The candidates; a create replaces the previous list.
    #[serde(default)]
    pub ice_candidate_list: Vec<IceCandidate>,
}

/// Body of a create on the call-close route: hang up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCloseBody {
    /// The other participant.
    pub remote_user_id: UserId,
    /// Always `true`.
    pub call_closed: bool,
}

impl CallCloseBody {
    /// Builds the body that hangs up the call with `remote_user_id`.
    pub fn new(remote_user_id: UserId) -> Self {
        Self {
            remote_user_id,
            call_closed: true,
        }
    }
}

/// The `{"info": …}` output of the call-request and call-response routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// A sentence such as `You requested a call`.
    pub info: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_request_body_matches_the_wire_shape() {
        let body = CallRequestBody {
            remote_user_id: UserId::from(2),
            sdp: SessionDescription {
                sdp: "v=0".into(),
                sdp_type: SdpType::Offer,
            },
            additional_data: json!({"videoCall": true}).as_object().unwrap().clone(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"remoteUserId": 2, "sdp": {"sdp": "v=0", "type": "offer"}, "additionalData": {"videoCall": true}})
        );
    }

    #[test]
    fn listen_for_a_call_values_decode() {
        let accepted: ListenForACallValue = serde_json::from_value(json!({
            "callAccepted": true, "sdp": {"sdp": "v=0", "type": "answer"}, "additionalData": {}, "remoteUserId": 2
        }))
        .unwrap();
        assert_eq!(accepted.call_accepted, Some(true));
        assert_eq!(accepted.remote_user_id, Some(UserId::from(2)));

        let presence: ListenForACallValue =
            serde_json::from_value(json!({"remoteUserIsConnected": false})).unwrap();
        assert_eq!(presence.remote_user_is_connected, Some(false));
        assert_eq!(presence.call_accepted, None);
    }

    #[test]
    fn ice_candidate_keeps_reference_names() {
        let candidate: IceCandidate = serde_json::from_value(json!({
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "id": "0", "label": 0
        }))
        .unwrap();
        assert_eq!(candidate.id.as_deref(), Some("0"));
        assert_eq!(candidate.label, Some(0));
    }
}
