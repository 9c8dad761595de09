//! Fast broker inspection over AMQP (amiquip).
//!
//! amiquip (amq-protocol 1.4) decodes header tables into a `BTreeMap`, so `Props::headers`
//! comes back sorted by key with duplicate keys collapsed (last one wins): wire order is
//! not observable here. It also rejects non-UTF-8 short/long strings (properties and
//! header values) with a connection error, so tests must not feed such bytes to these helpers.

use crate::broker_url;
use amiquip::{
    AmqpProperties, AmqpValue, Channel, Confirm, ConfirmSmoother, Connection, Consumer,
    ConsumerMessage, ExchangeDeclareOptions, ExchangeType, FieldTable, Publish,
    QueueDeclareOptions, QueueDeleteOptions,
};
use crossbeam_channel::Receiver;
use std::cell::RefCell;
use std::time::Duration;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// An AMQP connection for arranging and checking broker state; it deletes on drop every
/// queue and exchange it declared or was told about (`cleanup_*`), even when a test panics.
pub struct Broker {
    url: String,
    conn: RefCell<Connection>,
    // Reopened after any failure, because the server closes a channel on every error.
    chan: RefCell<Option<(Channel, Receiver<Confirm>)>>,
    queues: RefCell<Vec<String>>,
    exchanges: RefCell<Vec<String>>,
}

/// One message taken off a queue by `drain`/`get` (already acked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Message body bytes.
    pub body: Vec<u8>,
    /// Whether the broker had delivered it before.
    pub redelivered: bool,
    /// Exchange it was published to ("" for the default exchange).
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Its basic properties.
    pub props: Props,
}

/// Basic properties as a plain comparable value; headers are `(key, render_value(v))`
/// sorted by key (see the module note: amiquip loses wire order and duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props {
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    /// content-type property.
    pub content_type: Option<String>,
    /// content-encoding property.
    pub content_encoding: Option<String>,
    /// reply-to property.
    pub reply_to: Option<String>,
    /// correlation-id property.
    pub correlation_id: Option<String>,
    /// message-id property.
    pub message_id: Option<String>,
    /// expiration property.
    pub expiration: Option<String>,
    /// type property.
    pub type_: Option<String>,
    /// app-id property.
    pub app_id: Option<String>,
    /// user-id property.
    pub user_id: Option<String>,
    /// priority property.
    pub priority: Option<u8>,
    /// timestamp property (seconds).
    pub timestamp: Option<u64>,
    /// Header table, sorted by key, values rendered by `render_value`.
    pub headers: Option<Vec<(String, String)>>,
}

impl Props {
    fn from_amqp(p: &AmqpProperties) -> Props {
        Props {
            delivery_mode: *p.delivery_mode(),
            content_type: p.content_type().clone(),
            content_encoding: p.content_encoding().clone(),
            reply_to: p.reply_to().clone(),
            correlation_id: p.correlation_id().clone(),
            message_id: p.message_id().clone(),
            expiration: p.expiration().clone(),
            type_: p.type_().clone(),
            app_id: p.app_id().clone(),
            user_id: p.user_id().clone(),
            priority: *p.priority(),
            timestamp: *p.timestamp(),
            headers: p.headers().as_ref().map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), render_value(v)))
                    .collect()
            }),
        }
    }
}

/// Short typed text for a field value, tagged with RabbitMQ's type letter: `S:text`, `I:5`,
/// `t:true`, `l:-1`, `A:[S:a,I:1]`, `F:{k=S:v}`, `x:<hex>`, `V`.
pub fn render_value(v: &AmqpValue) -> String {
    match v {
        AmqpValue::Boolean(b) => format!("t:{b}"),
        AmqpValue::ShortShortInt(n) => format!("b:{n}"),
        AmqpValue::ShortShortUInt(n) => format!("B:{n}"),
        AmqpValue::ShortInt(n) => format!("s:{n}"),
        AmqpValue::ShortUInt(n) => format!("u:{n}"),
        AmqpValue::LongInt(n) => format!("I:{n}"),
        AmqpValue::LongUInt(n) => format!("i:{n}"),
        AmqpValue::LongLongInt(n) => format!("l:{n}"),
        AmqpValue::Float(f) => format!("f:{f}"),
        AmqpValue::Double(d) => format!("d:{d}"),
        AmqpValue::DecimalValue(d) => format!("D:{}e-{}", d.value, d.scale),
        AmqpValue::LongString(s) => format!("S:{s}"),
        AmqpValue::FieldArray(a) => {
            let items: Vec<String> = a.iter().map(render_value).collect();
            format!("A:[{}]", items.join(","))
        }
        AmqpValue::Timestamp(t) => format!("T:{t}"),
        AmqpValue::FieldTable(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k}={}", render_value(v)))
                .collect();
            format!("F:{{{}}}", items.join(","))
        }
        AmqpValue::ByteArray(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("x:{hex}")
        }
        AmqpValue::Void => "V".to_string(),
    }
}

fn with_connect_timeout(url: &str) -> String {
    if url.contains("connection_timeout=") {
        url.to_string()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}connection_timeout=10000")
    }
}

fn queue_options(durable: bool) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable,
        exclusive: false,
        auto_delete: false,
        arguments: FieldTable::new(),
    }
}

impl Broker {
    /// Connects to `broker_url()`; panics with a hint when RabbitMQ is not reachable.
    pub fn connect() -> Broker {
        Broker::connect_to(&broker_url())
    }

    /// Connects to another URL (e.g. a `Proxy`); panics with a hint when that fails.
    pub fn connect_to(url: &str) -> Broker {
        let conn = Connection::insecure_open(&with_connect_timeout(url)).unwrap_or_else(|e| {
            panic!(
                "cannot open an AMQP connection to {url}: {e}; is RabbitMQ running on {}?",
                crate::broker_addr()
            )
        });
        Broker {
            url: url.to_string(),
            conn: RefCell::new(conn),
            chan: RefCell::new(None),
            queues: RefCell::new(Vec::new()),
            exchanges: RefCell::new(Vec::new()),
        }
    }

    fn open_channel(&self) -> amiquip::Result<Channel> {
        self.conn.borrow_mut().open_channel(None)
    }

    fn with_chan<T>(
        &self,
        f: impl FnOnce(&Channel, &Receiver<Confirm>) -> amiquip::Result<T>,
    ) -> amiquip::Result<T> {
        let mut slot = self.chan.borrow_mut();
        if slot.is_none() {
            let ch = self.open_channel()?;
            // Confirms make `publish` synchronous: the message is queued when we return.
            let rx = ch.listen_for_publisher_confirms()?;
            ch.enable_publisher_confirms()?;
            *slot = Some((ch, rx));
        }
        let (ch, rx) = slot.as_ref().expect("channel just opened");
        let result = f(ch, rx);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    fn must<T>(&self, what: &str, r: amiquip::Result<T>) -> T {
        r.unwrap_or_else(|e| panic!("broker {}: {what} failed: {e}", self.url))
    }

    /// Declares a transient, non-auto-delete queue (what amqp-declare-queue does by default).
    pub fn declare(&self, q: &str) {
        self.declare_with(q, queue_options(false));
    }

    /// Declares a durable queue.
    pub fn declare_durable(&self, q: &str) {
        self.declare_with(q, queue_options(true));
    }

    /// Declares a quorum queue (durable, replicated on every node of a cluster).
    pub fn declare_quorum(&self, q: &str) {
        let mut arguments = FieldTable::new();
        arguments.insert(
            "x-queue-type".into(),
            AmqpValue::LongString("quorum".into()),
        );
        self.declare_with(
            q,
            QueueDeclareOptions {
                durable: true,
                arguments,
                ..queue_options(true)
            },
        );
    }

    /// Declares a queue with explicit options (arguments, exclusive, ...).
    pub fn declare_with(&self, q: &str, opts: QueueDeclareOptions) {
        self.cleanup_queue(q);
        let r = self.with_chan(|ch, _| ch.queue_declare(q, opts).map(|_| ()));
        self.must(&format!("declare queue {q}"), r);
    }

    /// Declares `unique(prefix)` as a transient queue and returns its name.
    pub fn temp_queue(&self, prefix: &str) -> String {
        let q = crate::unique(prefix);
        self.declare(&q);
        q
    }

    /// Deletes the queue on drop (for queues a tool under test creates).
    pub fn cleanup_queue(&self, q: &str) {
        let mut qs = self.queues.borrow_mut();
        if !qs.iter().any(|x| x == q) {
            qs.push(q.to_string());
        }
    }

    /// Deletes the exchange on drop.
    pub fn cleanup_exchange(&self, x: &str) {
        let mut xs = self.exchanges.borrow_mut();
        if !xs.iter().any(|e| e == x) {
            xs.push(x.to_string());
        }
    }

    /// Deletes a queue now, ignoring errors (missing queue included).
    pub fn delete(&self, q: &str) {
        let _ = self.with_chan(|ch, _| ch.queue_delete(q, QueueDeleteOptions::default()));
    }

    /// Purges a queue, returning how many messages it dropped.
    pub fn purge(&self, q: &str) -> u32 {
        let r = self.with_chan(|ch, _| ch.queue_purge(q));
        self.must(&format!("purge {q}"), r)
    }

    /// Declares a non-durable exchange of `kind` ("direct", "fanout", "topic", "headers").
    pub fn declare_exchange(&self, x: &str, kind: &str) {
        self.cleanup_exchange(x);
        let kind = match kind {
            "direct" => ExchangeType::Direct,
            "fanout" => ExchangeType::Fanout,
            "topic" => ExchangeType::Topic,
            "headers" => ExchangeType::Headers,
            other => ExchangeType::Custom(other.to_string()),
        };
        let r = self.with_chan(|ch, _| {
            ch.exchange_declare(kind, x, ExchangeDeclareOptions::default())
                .map(|_| ())
        });
        self.must(&format!("declare exchange {x}"), r);
    }

    /// Binds queue `q` to exchange `x` with `key`.
    pub fn bind(&self, q: &str, x: &str, key: &str) {
        let r = self.with_chan(|ch, _| ch.queue_bind(q, x, key, FieldTable::new()));
        self.must(&format!("bind {q} to {x}/{key}"), r);
    }

    /// Publishes `body` to queue `q` through the default exchange, waiting for the confirm.
    pub fn publish(&self, q: &str, body: &[u8]) {
        self.publish_with("", q, body, AmqpProperties::default());
    }

    /// Publishes with an exchange, routing key and properties, waiting for the confirm.
    pub fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: AmqpProperties,
    ) {
        let r = self.with_chan(|ch, rx| {
            ch.basic_publish(exchange, Publish::with_properties(body, routing_key, props))?;
            Ok(rx.recv_timeout(CONFIRM_TIMEOUT))
        });
        match self.must("publish", r) {
            Ok(Confirm::Ack(_)) => {}
            Ok(Confirm::Nack(_)) => panic!(
                "broker {}: publish to {exchange:?}/{routing_key:?} was nacked",
                self.url
            ),
            Err(e) => panic!(
                "broker {}: no publisher confirm within {CONFIRM_TIMEOUT:?}: {e}",
                self.url
            ),
        }
    }

    /// Publishes every body to queue `q` through the default exchange, in order, and waits
    /// until the broker has confirmed them all (faster than `publish` one by one).
    pub fn publish_all<B: AsRef<[u8]>>(&self, q: &str, bodies: &[B]) {
        let r = self.with_chan(|ch, rx| {
            for body in bodies {
                ch.basic_publish("", Publish::new(body.as_ref(), q))?;
            }
            let mut smoother = ConfirmSmoother::new();
            let mut acked = 0;
            while acked < bodies.len() {
                let Ok(confirm) = rx.recv_timeout(CONFIRM_TIMEOUT) else {
                    return Ok(Err(format!("no confirm within {CONFIRM_TIMEOUT:?}")));
                };
                for one in smoother.process(confirm) {
                    match one {
                        Confirm::Ack(_) => acked += 1,
                        Confirm::Nack(_) => return Ok(Err("a publish was nacked".into())),
                    }
                }
            }
            Ok(Ok(()))
        });
        if let Err(e) = self.must("publish", r) {
            panic!("broker {}: publishing to {q}: {e}", self.url);
        }
    }

    /// Ready-message count via a passive declare on a fresh channel; `None` if the queue is absent.
    pub fn count(&self, q: &str) -> Option<u32> {
        // A fresh channel, since a 404 closes it and must not disturb the shared one.
        let ch = self.must("open channel", self.open_channel());
        let r = ch
            .queue_declare_passive(q)
            .map(|queue| queue.declared_message_count());
        match r {
            Ok(n) => Some(n.unwrap_or(0)),
            Err(amiquip::Error::ServerClosedChannel { code: 404, .. }) => None,
            Err(e) => panic!("broker {}: passive declare of {q} failed: {e}", self.url),
        }
    }

    /// How many consumers queue `q` has (passive declare); `None` if the queue is absent.
    pub fn consumers(&self, q: &str) -> Option<u32> {
        let ch = self.must("open channel", self.open_channel());
        match ch.queue_declare_passive(q) {
            Ok(queue) => Some(queue.declared_consumer_count().unwrap_or(0)),
            Err(amiquip::Error::ServerClosedChannel { code: 404, .. }) => None,
            Err(e) => panic!("broker {}: passive declare of {q} failed: {e}", self.url),
        }
    }

    /// Whether queue `q` exists.
    pub fn exists(&self, q: &str) -> bool {
        self.count(q).is_some()
    }

    /// Takes (and acks) one message, or `None` when the queue is empty.
    pub fn get(&self, q: &str) -> Option<Msg> {
        let r = self.with_chan(|ch, _| {
            let Some(get) = ch.basic_get(q, false)? else {
                return Ok(None);
            };
            let d = get.delivery;
            let msg = Msg {
                body: d.body.clone(),
                redelivered: d.redelivered,
                exchange: d.exchange.clone(),
                routing_key: d.routing_key.clone(),
                props: Props::from_amqp(&d.properties),
            };
            d.ack(ch)?;
            Ok(Some(msg))
        });
        self.must(&format!("basic.get from {q}"), r)
    }

    /// Takes (and acks) every message currently in `q`, in queue order.
    pub fn drain(&self, q: &str) -> Vec<Msg> {
        std::iter::from_fn(|| self.get(q)).collect()
    }

    /// A fresh channel on this connection, for what these helpers do not cover
    /// (own consumers, qos); it closes when dropped.
    pub fn channel(&self) -> Channel {
        self.must("open channel", self.open_channel())
    }
}

/// Cancels a consumer and keeps it until the broker's cancel-ok has reached it. amiquip hands the
/// cancel-ok to the caller before it tells the consumer; a consumer dropped in between makes
/// amiquip's I/O thread stop with an error, which kills the whole connection.
pub fn cancel_consumer(consumer: Consumer<'_>) {
    consumer
        .cancel()
        .unwrap_or_else(|e| panic!("cancel consumer {}: {e}", consumer.consumer_tag()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match consumer.receiver().recv_deadline(deadline) {
            Ok(ConsumerMessage::ClientCancelled) => return,
            Ok(ConsumerMessage::Delivery(_)) => {} // unacked: the broker requeues it
            Ok(other) => panic!("consumer {}: {other:?}", consumer.consumer_tag()),
            Err(e) => panic!("consumer {}: no cancel-ok: {e}", consumer.consumer_tag()),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for q in self.queues.take() {
            self.delete(&q);
        }
        for x in self.exchanges.take() {
            let _ = self.with_chan(|ch, _| ch.exchange_delete(x.as_str(), false));
        }
    }
}
