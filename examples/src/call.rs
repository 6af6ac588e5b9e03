//! The call app: two signed-in users in one process make a WebRTC call through the server.
//!
//! User 1 (credential `{"Authorization": "Bearer abcd"}`) calls user 2 (`"Bearer efgh"`) with
//! additional data. User 2 accepts, and both send synthetic audio (Opus silence) and video
//! (VP8-like frames) for a moment. Each prints the RTP packets it received per kind and the
//! reports about the other user's connection. Then user 1 hangs up and both print how the call
//! ended.
//!
//! The server only relays the signalling on its internal call routes. Media goes directly
//! between the two peers over loopback ICE candidates ([`CallOptions::loopback`]), so no STUN
//! server or other host is contacted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use askless_client::{AsklessClient, UserId};

use askless_webrtc::{
    AsklessCallSignalling, CallClient, CallOptions, CallResponse, CloseReason, LiveCall, LiveCallEvent,
    LocalMedia, MediaStats, SyntheticMedia,
};
use futures::StreamExt as _;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::{Console, describe_error};

/// The credential of the caller: user 1 of the demo route set.
pub const CALLER_AUTHORIZATION: &str = "Bearer abcd";
/// The credential of the callee: user 2 of the demo route set.
pub const CALLEE_AUTHORIZATION: &str = "Bearer efgh";

/// How long media flows before the caller hangs up.
const MEDIA_DURATION: Duration = Duration::from_secs(2);

/// Upper bound of each signalling step: the incoming call, the accept, the answer, the close.
const STEP_WAIT: Duration = Duration::from_secs(15);

/// The outcome of a call run, for tests and callers.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    /// The user id the server gave the caller.
    pub caller_user_id: Option<UserId>,
    /// The user id the server gave the callee.
    pub callee_user_id: Option<UserId>,
    /// The additional data the callee received with the call.
    pub additional_data: Map<String, Value>,
    /// Packets the caller received from the callee.
    pub caller_received: MediaStats,
    /// Packets the callee received from the caller.
    pub callee_received: MediaStats,
    /// The reason the call ended for the caller, who hung up.
    pub caller_close: CloseReason,
    /// The reason the call ended for the callee.
    pub callee_close: CloseReason,
}

/// One signed-in user with its call client.
struct Participant {
    label: &'static str,
    client: AsklessClient,
    calls: CallClient,
    user_id: Option<UserId>,
}

/// Runs the call app against `url`, printing each step, and returns what happened.
///
/// Fails when a connection or a sign-in fails, when a signalling step does not complete within
/// 15 s, when the callee's answer is not an acceptance, or when no audio or video packet
/// arrives on either side. Errors are printed in plain words before they are returned.
pub async fn run(url: &str, console: &Console) -> anyhow::Result<CallReport> {
    console.line(format!("connecting to {url}"));
    let caller = Participant::sign_in(url, "caller", CALLER_AUTHORIZATION, console).await?;
    let callee = match Participant::sign_in(url, "callee", CALLEE_AUTHORIZATION, console).await {
        Ok(callee) => callee,
        Err(error) => {
            caller.client.close().await;
            return Err(error);
        }
    };

    let outcome = call(&caller, &callee, console).await;
    caller.client.close().await;
    callee.client.close().await;
    if let Err(error) = &outcome {
        console.line(format!("error: {error:#}"));
    }
    let report = outcome?;
    console.line("done");
    Ok(report)
}

impl Participant {
    async fn sign_in(
        url: &str,
        label: &'static str,
        authorization: &str,
        console: &Console,
    ) -> anyhow::Result<Self> {
        let client = AsklessClient::builder(url)
            .connect()
            .await
            .with_context(|| format!("the {label} could not connect"))?;
        let credential = json!({ "Authorization": authorization });
        let user_id = match client.authenticate(credential).await {
            Ok(authenticated) => authenticated.user_id,
            Err(error) => {
                console.line(format!("[{label}] error: {}", describe_error(&error)));
                client.close().await;
                return Err(error).with_context(|| format!("signing the {label} in failed"));
            }
        };
        match &user_id {
            Some(id) => console.line(format!("[{label}] signed in as user {id}")),
            None => console.line(format!(
                "[{label}] the server accepted the credential without a user"
            )),
        }
        let signalling = AsklessCallSignalling::new(client.clone());
        let calls = CallClient::new(Arc::new(signalling), CallOptions::loopback());
        Ok(Participant {
            label,
            client,
            calls,
            user_id,
        })
    }
}

/// Makes the call from `caller` to `callee`, lets media flow, and hangs up.
async fn call(caller: &Participant, callee: &Participant, console: &Console) -> anyhow::Result<CallReport> {
    let callee_id = callee
        .user_id
        .clone()
        .context("the server gave the callee no user id to call")?;
    let mut incoming = callee
        .calls
        .incoming_calls()
        .await
        .context("the callee could not listen for calls")?;

    let caller_media = LocalMedia::audio_and_video()?;
    let callee_media = LocalMedia::audio_and_video()?;
    let _sources = [
        SyntheticMedia::start(&caller_media)?,
        SyntheticMedia::start(&callee_media)?,
    ];

    let additional_data = data(json!({ "videoCall": true, "callerName": "Ana" }));
    console.line(format!(
        "[{}] calling user {callee_id} with {}",
        caller.label,
        Value::Object(additional_data.clone())
    ));
    let request = caller
        .calls
        .request_call_to_user(callee_id, caller_media, additional_data)?;

    let receiving = within("the incoming call", incoming.next())
        .await?
        .context("the callee's stream of incoming calls ended")?;
    let received_data = receiving.additional_data().clone();
    console.line(format!(
        "[{}] incoming call from user {} with {}",
        callee.label,
        receiving.remote_user_id(),
        Value::Object(received_data.clone())
    ));
    let mut callee_call = within(
        "the accept",
        receiving.accept(callee_media, data(json!({ "camera": "on" }))),
    )
    .await?
    .context("accepting the call failed")?;
    console.line(format!("[{}] accepted", callee.label));

    let mut caller_call = match within("the answer", request.response()).await? {
        CallResponse::Accepted {
            call,
            additional_data,
        } => {
            console.line(format!(
                "[{}] the call was accepted with {}",
                caller.label,
                Value::Object(additional_data)
            ));
            call
        }
        CallResponse::Rejected { additional_data } => {
            anyhow::bail!(
                "the callee rejected the call with {}",
                Value::Object(additional_data)
            )
        }
        CallResponse::Failed(error) => return Err(error).context("the call failed"),
    };

    console.line(format!(
        "audio and video flow both ways for {} s",
        MEDIA_DURATION.as_secs()
    ));
    let deadline = Instant::now() + MEDIA_DURATION;
    tokio::join!(
        print_events(caller.label, &mut caller_call, deadline, console),
        print_events(callee.label, &mut callee_call, deadline, console),
    );
    let caller_received = report_media(caller.label, &caller_call, console);
    let callee_received = report_media(callee.label, &callee_call, console);

    console.line(format!("[{}] hanging up", caller.label));
    let caller_close = within("the hang-up", caller_call.close()).await?;
    console.line(format!(
        "[{}] call ended: {}",
        caller.label,
        describe_close(caller_close)
    ));
    let callee_close = within("the callee to see the hang-up", callee_call.closed()).await?;
    console.line(format!(
        "[{}] call ended: {}",
        callee.label,
        describe_close(callee_close)
    ));

    for (label, stats) in [(caller.label, caller_received), (callee.label, callee_received)] {
        if stats.audio_packets_received == 0 || stats.video_packets_received == 0 {
            anyhow::bail!("the {label} did not receive both audio and video: {stats:?}");
        }
    }
    Ok(CallReport {
        caller_user_id: caller.user_id.clone(),
        callee_user_id: callee.user_id.clone(),
        additional_data: received_data,
        caller_received,
        callee_received,
        caller_close,
        callee_close,
    })
}

/// Prints the events of `call` until `deadline`: the other user's connection dropping or
/// coming back, or an early end of the call.
async fn print_events(label: &str, call: &mut LiveCall, deadline: Instant, console: &Console) {
    match call.remote_user_is_connected() {
        Some(connected) => console.line(format!(
            "[{label}] the other user is {}",
            connection_word(connected)
        )),
        None => console.line(format!(
            "[{label}] no report about the other user's connection yet"
        )),
    }
    loop {
        let event = tokio::select! {
            event = call.next_event() => event,
            () = tokio::time::sleep_until(deadline) => return,
        };
        match event {
            Some(LiveCallEvent::RemoteUserConnection(connected)) => {
                console.line(format!(
                    "[{label}] the other user is {}",
                    connection_word(connected)
                ));
            }
            Some(LiveCallEvent::Closed(reason)) => {
                console.line(format!(
                    "[{label}] the call ended early: {}",
                    describe_close(reason)
                ));
                return;
            }
            None => return,
        }
    }
}

fn report_media(label: &str, call: &LiveCall, console: &Console) -> MediaStats {
    let stats = call.media_stats();
    console.line(format!(
        "[{label}] received {} audio packets and {} video packets",
        stats.audio_packets_received, stats.video_packets_received
    ));
    stats
}

fn connection_word(connected: bool) -> &'static str {
    if connected { "connected" } else { "disconnected" }
}

/// Returns how a call ended, in plain words.
pub fn describe_close(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::ClosedLocally => "hung up here",
        CloseReason::ClosedByRemote => "the other user hung up",
        CloseReason::SignallingEnded => "the server ended the call (the other user hung up)",
        CloseReason::ConnectionFailed => "the media connection failed",
    }
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_WAIT, future)
        .await
        .with_context(|| format!("timed out after {} s waiting for {what}", STEP_WAIT.as_secs()))
}

fn data(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
