//! Local tracks the application writes samples to, remote tracks it reads RTP packets from,
//! and a synthetic media source for tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::error::CallError;

/// An RTP packet received on a remote track, as parsed by the WebRTC stack.
pub use rtc::rtp::Packet as RtpPacket;

/// Sentinel of [`LocalTrack`]'s payload type before negotiation.
const PAYLOAD_TYPE_UNKNOWN: u16 = u16::MAX;

/// The kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio, sent as Opus.
    Audio,
    /// Video, sent as VP8.
    Video,
}

impl MediaKind {
    pub(crate) fn from_codec_kind(kind: RtpCodecKind) -> Option<Self> {
        match kind {
            RtpCodecKind::Audio => Some(Self::Audio),
            RtpCodecKind::Video => Some(Self::Video),
            _ => None,
        }
    }

    pub(crate) fn codec_kind(self) -> RtpCodecKind {
        match self {
            Self::Audio => RtpCodecKind::Audio,
            Self::Video => RtpCodecKind::Video,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Audio => "audio",
            Self::Video => "video",
        })
    }
}

/// A local track that sends encoded samples (Opus audio or VP8 video) to the peer.
///
/// Clones share the track. Samples written before the call has negotiated its codecs are
/// discarded, because the RTP payload type is not known yet.
#[derive(Clone)]
pub struct LocalTrack {
    inner: Arc<LocalTrackInner>,
}

struct LocalTrackInner {
    kind: MediaKind,
    ssrc: u32,
    track: Arc<TrackLocalStaticSample>,
    payload_type: AtomicU16,
    samples_sent: AtomicU64,
}

impl LocalTrack {
    /// Creates an Opus audio track (48 kHz, two channels).
    pub fn opus() -> Result<Self, CallError> {
        Self::new(
            MediaKind::Audio,
            RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
        )
    }

    /// Creates a VP8 video track (90 kHz RTP clock).
    pub fn vp8() -> Result<Self, CallError> {
        Self::new(
            MediaKind::Video,
            RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
        )
    }

    fn new(kind: MediaKind, codec: RTCRtpCodec) -> Result<Self, CallError> {
        let ssrc = rand::random::<u32>();
        let track = MediaStreamTrack::new(
            "askless".to_owned(),
            format!("askless-{kind}-{ssrc}"),
            format!("askless-{kind}"),
            kind.codec_kind(),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let track = TrackLocalStaticSample::new(Instant::now(), track)
            .map_err(CallError::webrtc("create a local track"))?;
        Ok(Self {
            inner: Arc::new(LocalTrackInner {
                kind,
                ssrc,
                track: Arc::new(track),
                payload_type: AtomicU16::new(PAYLOAD_TYPE_UNKNOWN),
                samples_sent: AtomicU64::new(0),
            }),
        })
    }

    /// Returns the kind of the track.
    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// Returns how many samples were handed to the WebRTC stack since the call negotiated.
    pub fn samples_sent(&self) -> u64 {
        self.inner.samples_sent.load(Ordering::Relaxed)
    }

    /// Writes one encoded sample (an Opus frame or a VP8 frame) lasting `duration`.
    ///
    /// Returns `Ok(false)` and sends nothing while the call has not negotiated its codecs yet.
    pub async fn write_sample(&self, data: Bytes, duration: Duration) -> Result<bool, CallError> {
        let payload_type = self.inner.payload_type.load(Ordering::Acquire);
        let Ok(payload_type) = u8::try_from(payload_type) else {
            tracing::trace!(kind = %self.inner.kind, "sample discarded before negotiation");
            return Ok(false);
        };
        let sample = Sample {
            data,
            duration,
            ..Sample::new(Instant::now())
        };
        self.inner
            .track
            .sample_writer(self.inner.ssrc, payload_type)
            .write_sample(&sample)
            .await
            .map_err(CallError::webrtc("write a media sample"))?;
        self.inner.samples_sent.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(kind = %self.inner.kind, payload_type, "sample written");
        Ok(true)
    }

    pub(crate) fn webrtc_track(&self) -> Arc<TrackLocalStaticSample> {
        Arc::clone(&self.inner.track)
    }

    pub(crate) fn set_payload_type(&self, payload_type: u8) {
        self.inner
            .payload_type
            .store(u16::from(payload_type), Ordering::Release);
    }
}

impl fmt::Debug for LocalTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTrack")
            .field("kind", &self.inner.kind)
            .field("ssrc", &self.inner.ssrc)
            .finish_non_exhaustive()
    }
}

/// The local tracks a call sends: at most one audio and one video track.
#[derive(Debug, Clone, Default)]
pub struct LocalMedia {
    /// The audio track. Default: none.
    pub audio: Option<LocalTrack>,
    /// The video track. Default: none.
    pub video: Option<LocalTrack>,
}

impl LocalMedia {
    /// Creates local media with a new Opus audio track and a new VP8 video track.
    pub fn audio_and_video() -> Result<Self, CallError> {
        Ok(Self {
            audio: Some(LocalTrack::opus()?),
            video: Some(LocalTrack::vp8()?),
        })
    }

    pub(crate) fn tracks(&self) -> impl Iterator<Item = &LocalTrack> {
        self.audio.iter().chain(self.video.iter())
    }
}

/// A track the peer sends, delivering its RTP packets.
#[derive(Debug)]
pub struct RemoteTrack {
    kind: MediaKind,
    packets: mpsc::Receiver<RtpPacket>,
}

impl RemoteTrack {
    pub(crate) fn new(kind: MediaKind, packets: mpsc::Receiver<RtpPacket>) -> Self {
        Self { kind, packets }
    }

    /// Returns the kind of the track.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Waits for the next RTP packet; `None` once the track or the call has ended.
    pub async fn recv(&mut self) -> Option<RtpPacket> {
        self.packets.recv().await
    }
}

/// Counts of received RTP packets of a call, per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaStats {
    /// Audio RTP packets received.
    pub audio_packets_received: u64,
    /// Video RTP packets received.
    pub video_packets_received: u64,
    /// Received packets dropped because the application read a remote track too slowly.
    pub packets_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct MediaCounters {
    audio: AtomicU64,
    video: AtomicU64,
    dropped: AtomicU64,
}

impl MediaCounters {
    pub(crate) fn count_received(&self, kind: MediaKind) {
        let counter = match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MediaStats {
        MediaStats {
            audio_packets_received: self.audio.load(Ordering::Relaxed),
            video_packets_received: self.video.load(Ordering::Relaxed),
            packets_dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// An Opus frame of silence (TOC byte for a 20 ms CELT frame, then an empty payload).
const OPUS_SILENCE_FRAME: [u8; 3] = [0xf8, 0xff, 0xfe];
/// Interval between synthetic audio frames.
const AUDIO_FRAME_INTERVAL: Duration = Duration::from_millis(20);
/// Interval between synthetic video frames (about 30 frames per second).
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// Consecutive failed writes after which a synthetic source stops.
const SYNTHETIC_MAX_CONSECUTIVE_FAILURES: u32 = 50;

/// Builds a payload shaped like a VP8 key frame of 16×16 pixels: the 3-byte frame tag with
/// the key-frame bit clear, the start code `9d 01 2a`, width and height, then filler bytes.
/// It is not a decodable picture.
fn vp8_keyframe_like_payload() -> Bytes {
    let filler_len: u32 = 64;
    let first_partition_size = filler_len;
    // Frame tag: bit 0 = 0 (key frame), bits 1-3 = version 0, bit 4 = show frame,
    // bits 5-23 = size of the first partition.
    let tag = (first_partition_size << 5) | (1 << 4);
    let mut payload = vec![
        (tag & 0xff) as u8,
        ((tag >> 8) & 0xff) as u8,
        ((tag >> 16) & 0xff) as u8,
        0x9d,
        0x01,
        0x2a,
    ];
    payload.extend_from_slice(&16u16.to_le_bytes());
    payload.extend_from_slice(&16u16.to_le_bytes());
    payload.resize(payload.len() + filler_len as usize, 0);
    Bytes::from(payload)
}

/// A running source of synthetic media: Opus silence frames every 20 ms on the audio track
/// and VP8 key-frame-like payloads about every 33 ms on the video track.
///
/// The source stops when this handle is dropped.
#[derive(Debug)]
pub struct SyntheticMedia {
    tasks: Vec<JoinHandle<()>>,
}

impl SyntheticMedia {
    /// Starts writing synthetic samples to the tracks of `media`; needs a Tokio runtime.
    pub fn start(media: &LocalMedia) -> Result<Self, CallError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| CallError::NoRuntime)?;
        let mut tasks = Vec::new();
        if let Some(audio) = media.audio.clone() {
            let payload = Bytes::from_static(&OPUS_SILENCE_FRAME);
            tasks.push(runtime.spawn(write_periodically(audio, payload, AUDIO_FRAME_INTERVAL)));
        }
        if let Some(video) = media.video.clone() {
            let payload = vp8_keyframe_like_payload();
            tasks.push(runtime.spawn(write_periodically(video, payload, VIDEO_FRAME_INTERVAL)));
        }
        Ok(Self { tasks })
    }
}

impl Drop for SyntheticMedia {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn write_periodically(track: LocalTrack, payload: Bytes, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut consecutive_failures = 0u32;
    loop {
        ticker.tick().await;
        match track.write_sample(payload.clone(), interval).await {
            Ok(_) => consecutive_failures = 0,
            Err(error) => {
                consecutive_failures += 1;
                // Writes fail for good once the call is closed; stop after a second of failures.
                if consecutive_failures >= SYNTHETIC_MAX_CONSECUTIVE_FAILURES {
                    tracing::debug!(kind = %track.kind(), %error, "synthetic media stopped");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_payload_has_keyframe_header() {
        let payload = vp8_keyframe_like_payload();
        assert_eq!(payload[0] & 1, 0, "key-frame bit must be clear");
        assert_eq!(&payload[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([payload[6], payload[7]]), 16);
    }

    #[tokio::test]
    async fn sample_before_negotiation_is_discarded() {
        let track = LocalTrack::opus().unwrap();
        let sent = track
            .write_sample(Bytes::from_static(&OPUS_SILENCE_FRAME), AUDIO_FRAME_INTERVAL)
            .await
            .unwrap();
        assert!(!sent);
        assert_eq!(track.samples_sent(), 0);
    }
}
