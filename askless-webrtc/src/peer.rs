//! The WebRTC side of one call: building the peer connection with the call's parameters,
//! collecting its events, and converting descriptions and candidates to the wire types.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_protocol::UserId;
use askless_protocol::call::{IceCandidate, SdpType, SessionDescription};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::RTCRtpTransceiverInit;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::error::CallError;
use crate::media::{LocalMedia, LocalTrack, MediaCounters, MediaKind, RemoteTrack};
use crate::options::{CallOptions, CallParameters, IceTransportPolicy};

/// A peer connection with the state a call keeps about it.
pub(crate) struct PeerSession {
    connection: Arc<dyn PeerConnection>,
    events: Arc<PeerEvents>,
    gathering_complete: watch::Receiver<bool>,
    state: watch::Receiver<RTCPeerConnectionState>,
    remote_tracks: Mutex<Option<mpsc::UnboundedReceiver<RemoteTrack>>>,
    remote_candidates: tokio::sync::Mutex<RemoteCandidates>,
    senders: Vec<(LocalTrack, Arc<dyn RtpSender>)>,
    remote_user_id: UserId,
}

/// Remote candidates received before the remote description, kept until it is set.
#[derive(Default)]
struct RemoteCandidates {
    remote_description_set: bool,
    pending: Vec<IceCandidate>,
}

impl PeerSession {
    /// Builds a peer connection for a call with `remote_user_id` and adds the local tracks.
    pub(crate) async fn build(
        options: &CallOptions,
        parameters: &CallParameters,
        media: &LocalMedia,
        remote_user_id: &UserId,
    ) -> Result<Self, CallError> {
        for server in &parameters.ice_servers {
            server.validate()?;
        }

        let mut media_engine = MediaEngine::default();
        media_engine
            .register_default_codecs()
            .map_err(CallError::webrtc("register the default codecs"))?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .map_err(CallError::webrtc("register the default interceptors"))?;

        let mut network_types = Vec::new();
        if options.udp_bind_addresses.iter().any(|addr| addr.is_ipv4()) {
            network_types.push(NetworkType::Udp4);
        }
        if options.udp_bind_addresses.iter().any(|addr| addr.is_ipv6()) {
            network_types.push(NetworkType::Udp6);
        }
        // Multicast DNS stays off: it would open a multicast socket and send queries to the
        // local network, and host candidates carry plain IP addresses instead.
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(network_types)
            .with_include_loopback_candidate(options.include_loopback_candidates)
            .build();

        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(parameters.ice_servers.iter().map(|s| s.to_rtc()).collect())
            .with_ice_transport_policy(match parameters.ice_transport_policy {
                IceTransportPolicy::All => RTCIceTransportPolicy::All,
                IceTransportPolicy::Relay => RTCIceTransportPolicy::Relay,
            })
            .build();

        let (gathering_tx, gathering_complete) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (tracks_tx, tracks_rx) = mpsc::unbounded_channel();
        let events = Arc::new(PeerEvents {
            gathering_tx,
            state_tx,
            local_candidates: Mutex::new(Vec::new()),
            counters: Arc::new(MediaCounters::default()),
            tracks_tx,
            readers: Mutex::new(Vec::new()),
            packet_queue: options.remote_packet_queue.max(1),
            remote_user_id: remote_user_id.clone(),
        });

        let connection = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine)
            .with_handler(Arc::clone(&events) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(options.udp_bind_addresses.clone())
            .build()
            .await
            .map_err(CallError::webrtc("create the peer connection"))?;
        let connection: Arc<dyn PeerConnection> = Arc::new(connection);

        let mut senders = Vec::new();
        for track in media.tracks() {
            let local: Arc<dyn TrackLocal> = track.webrtc_track();
            match connection.add_track(local).await {
                Ok(sender) => senders.push((track.clone(), sender)),
                Err(source) => {
                    close_quietly(&connection).await;
                    return Err(CallError::WebRtc {
                        step: "add a local track",
                        source,
                    });
                }
            }
        }

        Ok(Self {
            connection,
            events,
            gathering_complete,
            state,
            remote_tracks: Mutex::new(Some(tracks_rx)),
            remote_candidates: tokio::sync::Mutex::new(RemoteCandidates::default()),
            senders,
            remote_user_id: remote_user_id.clone(),
        })
    }

    /// Adds receive-only transceivers for the kinds the offer must receive but no local
    /// track sends, as the reference client's offer constraints ask for both.
    pub(crate) async fn add_receive_only(
        &self,
        parameters: &CallParameters,
        media: &LocalMedia,
    ) -> Result<(), CallError> {
        let wanted = [
            (
                MediaKind::Audio,
                parameters.receive_audio && media.audio.is_none(),
            ),
            (
                MediaKind::Video,
                parameters.receive_video && media.video.is_none(),
            ),
        ];
        for (kind, add) in wanted {
            if !add {
                continue;
            }
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            self.connection
                .add_transceiver_from_kind(kind.codec_kind(), Some(init))
                .await
                .map_err(CallError::webrtc("add a receive-only transceiver"))?;
        }
        Ok(())
    }

    /// Creates the offer, applies it locally and waits for ICE gathering, so the returned
    /// offer carries every gathered candidate.
    pub(crate) async fn create_offer(
        &self,
        gathering_timeout: Duration,
    ) -> Result<SessionDescription, CallError> {
        let offer = self
            .connection
            .create_offer(None)
            .await
            .map_err(CallError::webrtc("create the offer"))?;
        self.connection
            .set_local_description(offer)
            .await
            .map_err(CallError::webrtc("set the local offer"))?;
        self.wait_gathering_complete(gathering_timeout).await;
        self.local_description(SdpType::Offer).await
    }

    /// Creates the answer to the remote offer already set, applies it locally and waits for
    /// ICE gathering, so the returned answer carries every gathered candidate.
    pub(crate) async fn create_answer(
        &self,
        gathering_timeout: Duration,
    ) -> Result<SessionDescription, CallError> {
        let answer = self
            .connection
            .create_answer(None)
            .await
            .map_err(CallError::webrtc("create the answer"))?;
        self.connection
            .set_local_description(answer)
            .await
            .map_err(CallError::webrtc("set the local answer"))?;
        self.update_payload_types().await;
        self.wait_gathering_complete(gathering_timeout).await;
        self.local_description(SdpType::Answer).await
    }

    async fn wait_gathering_complete(&self, timeout: Duration) {
        if !wait_until_set(self.gathering_complete.clone(), timeout).await {
            tracing::debug!(
                remote_user_id = %self.remote_user_id,
                timeout_ms = timeout.as_millis() as u64,
                "ICE gathering did not complete in time; sending the candidates found so far"
            );
        }
    }

    async fn local_description(&self, expected: SdpType) -> Result<SessionDescription, CallError> {
        let description = self
            .connection
            .local_description()
            .await
            .ok_or(CallError::WebRtc {
                step: "read the local description",
                source: webrtc::error::Error::Other("no local description is set".to_owned()),
            })?;
        Ok(SessionDescription {
            sdp: description.sdp,
            sdp_type: expected,
        })
    }

    /// Applies the remote offer or answer, then the candidates received before it.
    pub(crate) async fn set_remote_description(
        &self,
        description: &SessionDescription,
    ) -> Result<(), CallError> {
        let remote = match description.sdp_type {
            SdpType::Offer => RTCSessionDescription::offer(description.sdp.clone()),
            SdpType::Answer => RTCSessionDescription::answer(description.sdp.clone()),
        }
        .map_err(CallError::webrtc("parse the remote description"))?;
        self.connection
            .set_remote_description(remote)
            .await
            .map_err(CallError::webrtc("set the remote description"))?;

        let pending = {
            let mut candidates = self.remote_candidates.lock().await;
            candidates.remote_description_set = true;
            std::mem::take(&mut candidates.pending)
        };
        if !pending.is_empty() {
            tracing::debug!(
                remote_user_id = %self.remote_user_id,
                count = pending.len(),
                "applying ICE candidates received before the remote description"
            );
        }
        for candidate in pending {
            self.apply_candidate(candidate).await;
        }
        if description.sdp_type == SdpType::Answer {
            self.update_payload_types().await;
        }
        Ok(())
    }

    /// Adds remote candidates, or keeps them until the remote description is set.
    pub(crate) async fn add_remote_candidates(&self, list: Vec<IceCandidate>) {
        let ready = {
            let mut candidates = self.remote_candidates.lock().await;
            if !candidates.remote_description_set {
                tracing::debug!(
                    remote_user_id = %self.remote_user_id,
                    count = list.len(),
                    "keeping ICE candidates until the remote description is set"
                );
                candidates.pending.extend(list);
                return;
            }
            list
        };
        for candidate in ready {
            self.apply_candidate(candidate).await;
        }
    }

    async fn apply_candidate(&self, candidate: IceCandidate) {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.id,
            sdp_mline_index: candidate.label,
            ..Default::default()
        };
        // A candidate the stack cannot use (another address family, an unknown transport)
        // is skipped: the others may still connect.
        if let Err(error) = self.connection.add_ice_candidate(init).await {
            tracing::debug!(remote_user_id = %self.remote_user_id, %error, "remote ICE candidate skipped");
        }
    }

    /// Returns the local candidates gathered so far, in the reference client's format.
    pub(crate) async fn local_candidates(&self) -> Vec<IceCandidate> {
        // Every media section is bundled on one transport, so each candidate belongs to the
        // first section; its mid replaces the empty one the stack reports.
        let first_mid = match self.connection.local_description().await {
            Some(description) => first_media_id(&description.sdp),
            None => None,
        };
        let gathered = match self.events.local_candidates.lock() {
            Ok(candidates) => candidates.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        gathered
            .into_iter()
            .map(|candidate| IceCandidate {
                candidate: candidate.candidate,
                id: first_mid
                    .clone()
                    .or(candidate.sdp_mid.filter(|mid| !mid.is_empty())),
                label: Some(0),
            })
            .collect()
    }

    async fn update_payload_types(&self) {
        for (track, sender) in &self.senders {
            let parameters = match sender.get_parameters().await {
                Ok(parameters) => parameters,
                Err(error) => {
                    tracing::debug!(kind = %track.kind(), %error, "no send parameters yet");
                    continue;
                }
            };
            match parameters.rtp_parameters.codecs.first() {
                Some(codec) => {
                    tracing::debug!(kind = %track.kind(), payload_type = codec.payload_type, "codec negotiated");
                    track.set_payload_type(codec.payload_type);
                }
                None => tracing::debug!(kind = %track.kind(), "the peer accepted no codec of this track"),
            }
        }
    }

    /// Returns a receiver of the connection state changes.
    pub(crate) fn state(&self) -> watch::Receiver<RTCPeerConnectionState> {
        self.state.clone()
    }

    pub(crate) fn counters(&self) -> Arc<MediaCounters> {
        Arc::clone(&self.events.counters)
    }

    pub(crate) fn take_remote_tracks(&self) -> Option<mpsc::UnboundedReceiver<RemoteTrack>> {
        match self.remote_tracks.lock() {
            Ok(mut tracks) => tracks.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Closes the peer connection and stops the readers of the remote tracks.
    pub(crate) async fn close(&self) {
        close_quietly(&self.connection).await;
        let readers = match self.events.readers.lock() {
            Ok(mut readers) => std::mem::take(&mut *readers),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for reader in readers {
            reader.abort();
        }
    }
}

/// Waits until `flag` is true; returns false when `timeout` passes first.
async fn wait_until_set(mut flag: watch::Receiver<bool>, timeout: Duration) -> bool {
    let waited = tokio::time::timeout(timeout, flag.wait_for(|set| *set)).await;
    matches!(waited, Ok(Ok(_)))
}

async fn close_quietly(connection: &Arc<dyn PeerConnection>) {
    if let Err(error) = connection.close().await {
        tracing::debug!(%error, "closing the peer connection failed");
    }
}

/// Returns the value of the first `a=mid:` line of an SDP.
fn first_media_id(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

/// The event handler of one peer connection; it runs on the connection's driver task, so
/// every callback returns at once.
struct PeerEvents {
    gathering_tx: watch::Sender<bool>,
    state_tx: watch::Sender<RTCPeerConnectionState>,
    local_candidates: Mutex<Vec<RTCIceCandidateInit>>,
    counters: Arc<MediaCounters>,
    tracks_tx: mpsc::UnboundedSender<RemoteTrack>,
    readers: Mutex<Vec<JoinHandle<()>>>,
    packet_queue: usize,
    remote_user_id: UserId,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(candidate) => {
                tracing::debug!(remote_user_id = %self.remote_user_id, candidate = %candidate.candidate, "local ICE candidate gathered");
                match self.local_candidates.lock() {
                    Ok(mut candidates) => candidates.push(candidate),
                    Err(poisoned) => poisoned.into_inner().push(candidate),
                }
            }
            Err(error) => {
                tracing::debug!(remote_user_id = %self.remote_user_id, %error, "local ICE candidate not serializable")
            }
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        tracing::debug!(remote_user_id = %self.remote_user_id, ?state, "ICE gathering state changed");
        if state == RTCIceGatheringState::Complete {
            self.gathering_tx.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(remote_user_id = %self.remote_user_id, ?state, "peer connection state changed");
        self.state_tx.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(kind) = MediaKind::from_codec_kind(track.kind().await) else {
            tracing::debug!(remote_user_id = %self.remote_user_id, "remote track of an unknown kind ignored");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(remote_user_id = %self.remote_user_id, "no Tokio runtime to read the remote track");
            return;
        };
        tracing::debug!(remote_user_id = %self.remote_user_id, %kind, "remote track received");
        let (packets_tx, packets_rx) = mpsc::channel(self.packet_queue);
        // The application may not read tracks at all; the counters still run.
        let _ = self.tracks_tx.send(RemoteTrack::new(kind, packets_rx));
        let counters = Arc::clone(&self.counters);
        let reader = runtime.spawn(read_remote_track(track, kind, counters, packets_tx));
        match self.readers.lock() {
            Ok(mut readers) => readers.push(reader),
            Err(poisoned) => poisoned.into_inner().push(reader),
        }
    }
}

async fn read_remote_track(
    track: Arc<dyn TrackRemote>,
    kind: MediaKind,
    counters: Arc<MediaCounters>,
    packets: mpsc::Sender<crate::media::RtpPacket>,
) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                counters.count_received(kind);
                tracing::trace!(%kind, sequence_number = packet.header.sequence_number, "RTP packet received");
                if let Err(mpsc::error::TrySendError::Full(_)) = packets.try_send(packet) {
                    counters.count_dropped();
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(%kind, "remote track ended");
}

/// Returns the wire name of an SDP type, for errors.
pub(crate) fn sdp_type_name(sdp_type: SdpType) -> &'static str {
    match sdp_type {
        SdpType::Offer => "offer",
        SdpType::Answer => "answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn gathering_wait_gives_up_after_timeout() {
        let (flag_tx, flag) = watch::channel(false);
        let started = tokio::time::Instant::now();
        assert!(!wait_until_set(flag.clone(), Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        flag_tx.send_replace(true);
        assert!(wait_until_set(flag, Duration::from_secs(5)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_candidates_are_kept() {
        let options = CallOptions::loopback();
        let parameters = CallParameters::default();
        let caller_media = LocalMedia::audio_and_video().unwrap();
        let caller = PeerSession::build(&options, &parameters, &caller_media, &UserId::from(2))
            .await
            .unwrap();
        let callee = PeerSession::build(&options, &parameters, &LocalMedia::default(), &UserId::from(1))
            .await
            .unwrap();

        let offer = caller.create_offer(WAIT).await.unwrap();
        let candidates = caller.local_candidates().await;
        assert!(!candidates.is_empty());
        for candidate in &candidates {
            assert!(candidate.candidate.contains(" 127.0.0.1 "), "{candidate:?}");
            assert_eq!(candidate.label, Some(0));
            assert!(candidate.id.is_some());
        }

        callee.add_remote_candidates(candidates.clone()).await;
        assert_eq!(
            callee.remote_candidates.lock().await.pending.len(),
            candidates.len()
        );
        callee.set_remote_description(&offer).await.unwrap();
        assert!(callee.remote_candidates.lock().await.pending.is_empty());

        let answer = callee.create_answer(WAIT).await.unwrap();
        caller.set_remote_description(&answer).await.unwrap();
        for session in [&caller, &callee] {
            let mut state = session.state();
            let connected = tokio::time::timeout(
                WAIT,
                state.wait_for(|state| *state == RTCPeerConnectionState::Connected),
            )
            .await;
            assert!(matches!(connected, Ok(Ok(_))), "the peers did not connect");
        }
        caller.close().await;
        callee.close().await;
    }

    #[test]
    fn first_media_id_reads_first_mid() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 x 96\r\na=mid:1\r\n";
        assert_eq!(first_media_id(sdp).as_deref(), Some("0"));
        assert_eq!(first_media_id("v=0\r\n"), None);
    }
}
