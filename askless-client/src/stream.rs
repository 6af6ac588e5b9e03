//! Live streams of a read route: the public stream type, its options and its buffer.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Operation, Result};

/// The source of a stream's first value when it joins an open stream of the same route and
/// params.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamSource {
    /// Only values the server sends from now on. This is the default.
    #[default]
    RemoteOnly,
    /// The last value the shared stream received, at once, then the server's values. Unlike
    /// the reference client, the cached value goes to the new stream only.
    CacheAndRemote,
}

/// How many values a stream keeps when its reader is slower than the server.
///
/// The connection task never waits for a reader. When the buffer is full, the oldest value is
/// dropped and counted in [`ReadStream::skipped`], so the buffer always keeps the newest value
/// (the `keep_latest_drops_older_values` test checks this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamBuffer {
    /// Keep only the latest value. This is the default: a stream is the current value of a
    /// route, so older values are usually stale.
    #[default]
    KeepLatest,
    /// Keep up to this many values (at least 1).
    Bounded(usize),
}

impl StreamBuffer {
    fn capacity(self) -> usize {
        match self {
            StreamBuffer::KeepLatest => 1,
            StreamBuffer::Bounded(capacity) => capacity.max(1),
        }
    }
}

/// Options of [`AsklessClient::read_stream_with`](crate::AsklessClient::read_stream_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Default: [`StreamSource::RemoteOnly`].
    pub source: StreamSource,
    /// Whether a stream whose route needs an authentication keeps waiting for one after
    /// `clear_authentication`. Default: `true`.
    pub persevere: bool,
    /// Default: [`StreamBuffer::KeepLatest`].
    pub buffer: StreamBuffer,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            source: StreamSource::RemoteOnly,
            persevere: true,
            buffer: StreamBuffer::KeepLatest,
        }
    }
}

/// The events of one stream, oldest first.
///
/// The oldest event is kept inline, so that a [`StreamBuffer::KeepLatest`] buffer, which keeps
/// one event at most, never allocates. A `VecDeque` would allocate 4 slots at the first event
/// and keep them after it is read.
#[derive(Debug, Default)]
struct EventBuffer {
    oldest: Option<Result<Value>>,
    newer: VecDeque<Result<Value>>,
}

impl EventBuffer {
    fn len(&self) -> usize {
        usize::from(self.oldest.is_some()) + self.newer.len()
    }

    fn push_back(&mut self, event: Result<Value>) {
        if self.oldest.is_none() {
            self.oldest = Some(event);
        } else {
            self.newer.push_back(event);
        }
    }

    fn pop_front(&mut self) -> Option<Result<Value>> {
        let event = self.oldest.take()?;
        self.oldest = self.newer.pop_front();
        Some(event)
    }
}

/// The buffer between the connection task and one [`ReadStream`].
///
/// Everything is behind one lock, so that it fits in 128 bytes with the `Arc` counts: an
/// application may keep thousands of idle streams.
#[derive(Debug)]
pub(crate) struct SubscriberQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug)]
struct QueueState {
    events: EventBuffer,
    waker: Option<Waker>,
    skipped: u64,
    /// At least 1. `u32` fits in the padding next to the flags; larger capacities are clamped
    /// to `u32::MAX` events, far more than fit in memory.
    capacity: u32,
    ended: bool,
    /// Whether the reader dropped its stream.
    dropped: bool,
}

impl SubscriberQueue {
    pub(crate) fn new(buffer: StreamBuffer) -> Arc<Self> {
        let capacity = u32::try_from(buffer.capacity()).unwrap_or(u32::MAX);
        Arc::new(SubscriberQueue {
            state: Mutex::new(QueueState {
                events: EventBuffer::default(),
                waker: None,
                skipped: 0,
                capacity,
                ended: false,
                dropped: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding this lock cannot leave the queue inconsistent, so poisoning is
        // ignored.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an event, dropping the oldest one when the buffer is full.
    pub(crate) fn push(&self, event: Result<Value>) {
        let mut state = self.lock();
        if state.ended {
            return;
        }
        if state.events.len() >= state.capacity as usize {
            state.events.pop_front();
            state.skipped += 1;
        }
        state.events.push_back(event);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Ends the stream after the events already buffered.
    pub(crate) fn end(&self) {
        let mut state = self.lock();
        state.ended = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Returns whether the reader dropped its stream.
    pub(crate) fn is_dropped(&self) -> bool {
        self.lock().dropped
    }
}

/// A live stream of a read route's values, from
/// [`AsklessClient::read_stream`](crate::AsklessClient::read_stream).
///
/// Each item is the route's output (`null` when the server sent none), or an error when the
/// listen failed; the stream then ends. It also ends when the server stops it or the client is
/// closed. Streams of the same route and params share one listener on the server. Dropping the
/// stream unsubscribes it. When a listener has had no stream for 4.5 s, the client stops it by
/// leaving it out of its pings.
pub struct ReadStream {
    queue: Arc<SubscriberQueue>,
    route: Box<str>,
}

impl ReadStream {
    pub(crate) fn new(queue: Arc<SubscriberQueue>, route: Box<str>) -> Self {
        ReadStream { queue, route }
    }

    /// Returns the route of the stream.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Returns how many values were dropped because the buffer was full.
    pub fn skipped(&self) -> u64 {
        self.queue.lock().skipped
    }

    /// Returns how many values wait in the buffer to be read: at most 1 with
    /// [`StreamBuffer::KeepLatest`] and at most the capacity with [`StreamBuffer::Bounded`]. An
    /// error that ended the stream counts as one value.
    pub fn buffered_len(&self) -> usize {
        self.queue.lock().events.len()
    }

    /// Turns the stream into one that deserializes every value into `T`.
    pub fn json<T: DeserializeOwned>(self) -> TypedReadStream<T> {
        TypedReadStream {
            inner: self,
            target: PhantomData,
        }
    }
}

impl fmt::Debug for ReadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Stream for ReadStream {
    type Item = Result<Value>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.queue.lock();
        if let Some(event) = state.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ReadStream {
    fn drop(&mut self) {
        self.queue.lock().dropped = true;
    }
}

/// A [`ReadStream`] whose values are deserialized into `T`; from [`ReadStream::json`].
pub struct TypedReadStream<T> {
    inner: ReadStream,
    target: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedReadStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedReadStream")
            .field("route", &self.inner.route)
            .field("target", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: DeserializeOwned> Stream for TypedReadStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let route = self.inner.route.clone();
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|event| {
                event.and_then(|value| {
                    serde_json::from_value(value).map_err(|error| {
                        Error::decode(Operation::Listen, &route, std::any::type_name::<T>(), error)
                    })
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};
    use serde_json::json;

    #[tokio::test]
    async fn keep_latest_drops_older_values() {
        let queue = SubscriberQueue::new(StreamBuffer::KeepLatest);
        let mut stream = ReadStream::new(Arc::clone(&queue), "items".into());

        for n in 0..5 {
            queue.push(Ok(json!(n)));
        }
        queue.end();

        assert_eq!(stream.next().await.unwrap().unwrap(), json!(4));
        assert_eq!(stream.skipped(), 4);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn bounded_buffer_keeps_newest_values() {
        let queue = SubscriberQueue::new(StreamBuffer::Bounded(2));
        let stream = ReadStream::new(Arc::clone(&queue), "items".into());

        for n in 0..5 {
            queue.push(Ok(json!(n)));
        }
        queue.end();

        let skipped = stream.skipped();
        let values: Vec<Value> = stream.map(|event| event.unwrap()).collect().await;
        assert_eq!(values, vec![json!(3), json!(4)]);
        assert_eq!(skipped, 3);
    }

    #[tokio::test]
    async fn typed_stream_reports_decode_errors() {
        let queue = SubscriberQueue::new(StreamBuffer::Bounded(4));
        let mut stream = ReadStream::new(Arc::clone(&queue), "items".into()).json::<u32>();

        queue.push(Ok(json!(7)));
        queue.push(Ok(json!("seven")));

        assert_eq!(stream.next().await.unwrap().unwrap(), 7);
        assert!(stream.next().await.unwrap().unwrap_err().is_decode());
    }

    #[test]
    fn keep_latest_never_allocates() {
        let queue = SubscriberQueue::new(StreamBuffer::KeepLatest);
        let mut stream = ReadStream::new(Arc::clone(&queue), "items".into());

        for n in 0..3 {
            queue.push(Ok(json!(n)));
            assert_eq!(stream.next().now_or_never().unwrap().unwrap().unwrap(), json!(n));
        }

        assert_eq!(queue.lock().events.newer.capacity(), 0);
    }

    #[test]
    fn bounded_buffer_keeps_every_value() {
        let queue = SubscriberQueue::new(StreamBuffer::Bounded(10));

        for n in 0..10 {
            queue.push(Ok(json!(n)));
        }

        assert_eq!(queue.lock().events.len(), 10);
        assert_eq!(queue.lock().skipped, 0);
    }

    #[test]
    fn event_buffer_keeps_order() {
        let mut buffer = EventBuffer::default();

        for n in 0..4 {
            buffer.push_back(Ok(json!(n)));
        }
        let first = buffer.pop_front().unwrap().unwrap();
        buffer.push_back(Ok(json!(4)));

        assert_eq!(first, json!(0));
        assert_eq!(buffer.len(), 4);
        for n in 1..5 {
            assert_eq!(buffer.pop_front().unwrap().unwrap(), json!(n));
        }
        assert!(buffer.pop_front().is_none());
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn queue_fits_in_128_bytes() {
        // The `Arc` adds two counters; 128 bytes is a glibc malloc size class.
        let allocation = std::mem::size_of::<SubscriberQueue>() + 2 * std::mem::size_of::<usize>();

        assert!(allocation + 8 <= 128, "{allocation} bytes");
    }

    #[test]
    fn read_stream_is_three_words() {
        assert_eq!(
            std::mem::size_of::<ReadStream>(),
            3 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn dropping_the_stream_is_visible() {
        let queue = SubscriberQueue::new(StreamBuffer::KeepLatest);
        let stream = ReadStream::new(Arc::clone(&queue), "items".into());

        drop(stream);

        assert!(queue.is_dropped());
    }
}
