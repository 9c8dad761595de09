//! What the broker says on channel 1 once a tool speaks there through the wire alone: publisher
//! confirms (basic.ack, basic.nack), returned messages (basic.return, with its content), the
//! answer to basic.get (with the message), basic.qos-ok and channel.close, read from the
//! inbound frames as they go by, instead of by amiquip.
//!
//! amiquip would parse each ack, hand it over a channel to the publishing thread (a wake-up per
//! ack while that thread waits) and sort them there. Here an ack costs a few comparisons on the
//! thread that reads the socket, and the publisher is woken only when what it waits for has
//! come. It also frees the publisher from amiquip's listeners, which its I/O thread installs at
//! some later moment: confirm.select can then go out with the first publishes, with no wait.

use super::frames::{
    close_reason, short_at, u16_at, u64_at, BASIC_ACK, BASIC_GET_EMPTY, BASIC_GET_OK, BASIC_NACK,
    BASIC_QOS_OK, BASIC_RETURN, CHANNEL_CLOSE,
};
use super::scan::{FRAME_BODY, FRAME_HEADER};
use std::collections::BTreeSet;

/// A message the broker could not route (basic.return, for `mandatory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub code: u16,
    pub text: String,
    pub exchange: String,
    pub routing_key: String,
}

/// The answer to a basic.get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Empty,
    Message { delivery_tag: u64, body: Vec<u8> },
}

/// A basic.get-ok's message while its content frames come.
#[derive(Debug)]
struct Getting {
    delivery_tag: u64,
    /// Known once the content header has come.
    size: Option<u64>,
    body: Vec<u8>,
}

/// What the broker sends on channel 1 when the tools speak there without amiquip: confirms
/// and returns (delivery tags count from 1), basic.get's answer, channel.close.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    /// Every tag up to this one is acknowledged.
    pub confirmed: u64,
    /// Tags acknowledged one by one beyond `confirmed + 1` (RabbitMQ confirms in order, but the
    /// protocol does not promise it).
    early: BTreeSet<u64>,
    /// The first message the broker refused.
    pub nacked: Option<u64>,
    /// The first message the broker returned.
    pub returned: Option<Returned>,
    /// The content frames of a returned message are still to come: the body bytes left, once
    /// its content header has come.
    skipping: Option<Option<u64>>,
    /// The broker closed the channel: its reply code and text.
    pub closed: Option<(u16, String)>,
    /// How many basic.qos the broker has answered (`WireControl::barrier`).
    pub qos_ok: u64,
    /// The answer to a basic.get: None while it is to come, or while its message is.
    pub got: Option<Got>,
    /// The message of a basic.get-ok, while its content comes.
    getting: Option<Getting>,
    /// A publisher waits until `confirmed` reaches this.
    pub want: u64,
}

impl Confirms {
    /// Takes a whole frame of the tracked channel (the publisher's: amiquip does not know it).
    /// Returns whether a waiting publisher must be woken.
    pub fn take(&mut self, kind: u8, method: Option<(u16, u16)>, frame: &[u8]) -> bool {
        if let Some(body_left) = self.skipping {
            return self.skip_content(kind, body_left, frame);
        }
        if self.getting.is_some() {
            return self.get_content(kind, frame);
        }
        self.take_method(method, frame).unwrap_or(false)
    }

    /// A frame of a basic.get-ok's content: the header (the body's size), then body frames.
    fn get_content(&mut self, kind: u8, frame: &[u8]) -> bool {
        let Some(getting) = self.getting.as_mut() else {
            return false;
        };
        match kind {
            FRAME_HEADER => getting.size = Some(u64_at(frame, 11).unwrap_or(0)),
            FRAME_BODY => {
                let payload = frame
                    .get(7..frame.len().saturating_sub(1))
                    .unwrap_or_default();
                getting.body.extend_from_slice(payload);
            }
            // Anything else ends the content (a broken one): what came is all there is.
            _ => getting.size = Some(getting.body.len() as u64),
        }
        let complete = getting
            .size
            .is_some_and(|size| getting.body.len() as u64 >= size);
        if !complete {
            return false;
        }
        let Some(done) = self.getting.take() else {
            return false;
        };
        self.got = Some(Got::Message {
            delivery_tag: done.delivery_tag,
            body: done.body,
        });
        true
    }

    fn take_method(&mut self, method: Option<(u16, u16)>, frame: &[u8]) -> Option<bool> {
        // Payload: class and method (4 bytes), then the arguments.
        match method {
            Some(BASIC_ACK) => {
                let tag = u64_at(frame, 11)?;
                let multiple = frame.get(19)? & 1 != 0;
                self.ack(tag, multiple);
                Some(self.confirmed >= self.want)
            }
            Some(BASIC_NACK) => {
                let tag = u64_at(frame, 11)?;
                let multiple = frame.get(19)? & 1 != 0;
                let first = if multiple { self.confirmed + 1 } else { tag };
                self.nacked.get_or_insert(first);
                Some(true)
            }
            Some(BASIC_RETURN) => {
                let code = u16_at(frame, 11)?;
                let (text, at) = short_at(frame, 13)?;
                let (exchange, at) = short_at(frame, at)?;
                let (routing_key, _) = short_at(frame, at)?;
                self.returned.get_or_insert(Returned {
                    code,
                    text,
                    exchange,
                    routing_key,
                });
                self.skipping = Some(None);
                Some(true)
            }
            Some(BASIC_QOS_OK) => {
                self.qos_ok += 1;
                Some(true)
            }
            Some(BASIC_GET_OK) => {
                self.getting = Some(Getting {
                    delivery_tag: u64_at(frame, 11)?,
                    size: None,
                    body: Vec::new(),
                });
                Some(false)
            }
            Some(BASIC_GET_EMPTY) => {
                self.got = Some(Got::Empty);
                Some(true)
            }
            Some(CHANNEL_CLOSE) => {
                self.closed = close_reason(frame);
                Some(true)
            }
            // Nothing else needs an answer: channel.open-ok (the channel was opened with the
            // connection, see the wire), and the replies the waiters look for elsewhere.
            _ => Some(false),
        }
    }

    /// A frame of a returned message's content: dropped, as its method was.
    fn skip_content(&mut self, kind: u8, body_left: Option<u64>, frame: &[u8]) -> bool {
        let left = match (kind, body_left) {
            // The content header: class, weight, then the body size.
            (FRAME_HEADER, None) => u64_at(frame, 11).unwrap_or(0),
            (FRAME_BODY, Some(left)) => left.saturating_sub(frame.len().saturating_sub(8) as u64),
            // Anything else ends the content (a broken one: nothing more to skip).
            _ => 0,
        };
        self.skipping = (left > 0).then_some(Some(left));
        false
    }

    fn ack(&mut self, tag: u64, multiple: bool) {
        if multiple {
            self.confirmed = self.confirmed.max(tag);
            self.early = self.early.split_off(&(self.confirmed + 1));
        } else if tag == self.confirmed + 1 {
            self.confirmed = tag;
        } else if tag > self.confirmed + 1 {
            self.early.insert(tag);
        }
        while self.early.remove(&(self.confirmed + 1)) {
            self.confirmed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frames::CHANNEL_OPEN_OK;
    use crate::wire::scan::FRAME_METHOD;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind, 0, 1];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        f
    }

    /// Feeds an ack or nack; true when a waiting publisher is to be woken.
    fn ack(c: &mut Confirms, method: (u16, u16), tag: u64, multiple: bool) -> bool {
        let mut p = vec![0, method.0 as u8, 0, method.1 as u8];
        p.extend_from_slice(&tag.to_be_bytes());
        p.push(u8::from(multiple));
        c.take(FRAME_METHOD, Some(method), &frame(FRAME_METHOD, &p))
    }

    #[test]
    fn acks_in_any_order_and_multiple() {
        let mut c = Confirms {
            want: 5,
            ..Confirms::default()
        };
        assert!(!ack(&mut c, BASIC_ACK, 1, false));
        assert!(!ack(&mut c, BASIC_ACK, 3, false));
        assert_eq!(c.confirmed, 1);
        assert!(!ack(&mut c, BASIC_ACK, 2, false));
        assert_eq!(c.confirmed, 3);
        assert!(!ack(&mut c, BASIC_ACK, 7, false));
        assert!(ack(&mut c, BASIC_ACK, 5, true), "5 reached");
        assert_eq!(c.confirmed, 5);
        assert!(ack(&mut c, BASIC_ACK, 6, false));
        assert_eq!(c.confirmed, 7, "7 was acked early");
        assert!(ack(&mut c, BASIC_ACK, 4, false), "a stale ack");
        assert_eq!(c.confirmed, 7);
        assert!(c.nacked.is_none());
    }

    #[test]
    fn nacks_name_the_first_refused() {
        let mut c = Confirms::default();
        ack(&mut c, BASIC_ACK, 2, true);
        assert!(ack(&mut c, BASIC_NACK, 6, true));
        assert_eq!(c.nacked, Some(3));
        ack(&mut c, BASIC_NACK, 9, false);
        assert_eq!(c.nacked, Some(3), "the first refusal is kept");
    }

    #[test]
    fn returns_and_their_content_are_taken() {
        let mut c = Confirms::default();
        let mut p = vec![0, 60, 0, 50];
        p.extend_from_slice(&312u16.to_be_bytes());
        for s in ["NO_ROUTE", "ex", "key"] {
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        assert!(c.take(FRAME_METHOD, Some(BASIC_RETURN), &frame(FRAME_METHOD, &p)));
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&5u64.to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        assert!(!c.take(FRAME_HEADER, None, &frame(FRAME_HEADER, &header)));
        assert!(!c.take(FRAME_BODY, None, &frame(FRAME_BODY, b"abc")));
        assert!(c.skipping.is_some());
        assert!(!c.take(FRAME_BODY, None, &frame(FRAME_BODY, b"de")));
        // The content is over: the next method is judged on its own.
        assert!(c.skipping.is_none());
        assert_eq!(
            c.returned,
            Some(Returned {
                code: 312,
                text: "NO_ROUTE".into(),
                exchange: "ex".into(),
                routing_key: "key".into(),
            })
        );
        // A return of an empty message has no body frame.
        let mut c = Confirms::default();
        c.take(FRAME_METHOD, Some(BASIC_RETURN), &frame(FRAME_METHOD, &p));
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&0u64.to_be_bytes());
        c.take(FRAME_HEADER, None, &frame(FRAME_HEADER, &header));
        assert!(ack(&mut c, BASIC_ACK, 1, false));
        assert_eq!(c.confirmed, 1);
    }

    #[test]
    fn a_got_message_is_put_together() {
        let mut c = Confirms::default();
        let mut p = vec![0, 60, 0, 71];
        p.extend_from_slice(&9u64.to_be_bytes());
        p.extend_from_slice(&[0, 0, 1, b'q', 0, 0, 0, 0]);
        assert!(!c.take(FRAME_METHOD, Some(BASIC_GET_OK), &frame(FRAME_METHOD, &p)));
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&5u64.to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        assert!(!c.take(FRAME_HEADER, None, &frame(FRAME_HEADER, &header)));
        assert!(!c.take(FRAME_BODY, None, &frame(FRAME_BODY, b"hel")));
        assert!(c.take(FRAME_BODY, None, &frame(FRAME_BODY, b"lo")));
        assert_eq!(
            c.got,
            Some(Got::Message {
                delivery_tag: 9,
                body: b"hello".to_vec()
            })
        );
        // An empty body has no body frame.
        let mut c = Confirms::default();
        c.take(FRAME_METHOD, Some(BASIC_GET_OK), &frame(FRAME_METHOD, &p));
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&0u64.to_be_bytes());
        assert!(c.take(FRAME_HEADER, None, &frame(FRAME_HEADER, &header)));
        assert!(matches!(&c.got, Some(Got::Message { body, .. }) if body.is_empty()));
        let mut c = Confirms::default();
        assert!(c.take(
            FRAME_METHOD,
            Some(BASIC_GET_EMPTY),
            &frame(FRAME_METHOD, &[0, 60, 0, 72, 0])
        ));
        assert_eq!(c.got, Some(Got::Empty));
    }

    #[test]
    fn channel_close_and_qos_ok_are_kept() {
        let mut c = Confirms::default();
        let mut p = vec![0, 20, 0, 40];
        p.extend_from_slice(&404u16.to_be_bytes());
        p.push(9);
        p.extend_from_slice(b"NOT_FOUND");
        p.extend_from_slice(&[0, 60, 0, 40]);
        assert!(c.take(FRAME_METHOD, Some(CHANNEL_CLOSE), &frame(FRAME_METHOD, &p)));
        assert_eq!(c.closed, Some((404, "NOT_FOUND".into())));
        assert!(c.take(
            FRAME_METHOD,
            Some(BASIC_QOS_OK),
            &frame(FRAME_METHOD, &[0, 60, 0, 11])
        ));
        assert_eq!(c.qos_ok, 1);
        assert!(!c.take(
            FRAME_METHOD,
            Some(CHANNEL_OPEN_OK),
            &frame(FRAME_METHOD, &[0, 20, 0, 11])
        ));
    }
}
