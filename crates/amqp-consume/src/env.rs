//! `--export-env`: the message's metadata as `AMQP_*` environment variables for the command.

use amiquip::{AmqpValue, Delivery};

/// The variables for one delivery: routing key, exchange, redelivered flag, delivery tag, every
/// basic property that is set, and each header as `AMQP_HEADER_<NAME>`. Values holding a NUL
/// byte cannot be passed in an environment and are left out.
pub fn vars(d: &Delivery) -> Vec<(String, String)> {
    let p = &d.properties;
    let mut out = vec![
        ("AMQP_ROUTING_KEY".to_string(), d.routing_key.clone()),
        ("AMQP_EXCHANGE".to_string(), d.exchange.clone()),
        ("AMQP_REDELIVERED".to_string(), d.redelivered.to_string()),
        (
            "AMQP_DELIVERY_TAG".to_string(),
            d.delivery_tag().to_string(),
        ),
    ];
    let mut set = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push((name.to_string(), v));
        }
    };
    set("AMQP_CONTENT_TYPE", p.content_type().clone());
    set("AMQP_CONTENT_ENCODING", p.content_encoding().clone());
    set(
        "AMQP_DELIVERY_MODE",
        p.delivery_mode().map(|v| v.to_string()),
    );
    set("AMQP_PRIORITY", p.priority().map(|v| v.to_string()));
    set("AMQP_CORRELATION_ID", p.correlation_id().clone());
    set("AMQP_REPLY_TO", p.reply_to().clone());
    set("AMQP_EXPIRATION", p.expiration().clone());
    set("AMQP_MESSAGE_ID", p.message_id().clone());
    set("AMQP_TIMESTAMP", p.timestamp().map(|v| v.to_string()));
    set("AMQP_TYPE", p.type_().clone());
    set("AMQP_USER_ID", p.user_id().clone());
    set("AMQP_APP_ID", p.app_id().clone());
    if let Some(headers) = p.headers() {
        for (key, value) in headers {
            out.push((format!("AMQP_HEADER_{}", header_name(key)), render(value)));
        }
    }
    out.retain(|(_, v)| !v.contains('\0'));
    out
}

/// Upper case, every character that is not an ASCII letter or digit turned into `_`, so the
/// name is a valid shell variable name.
pub fn header_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A header value as a script would want to read it: strings as they are, numbers in decimal,
/// booleans as true/false, arrays and tables as comma-separated items.
pub fn render(v: &AmqpValue) -> String {
    match v {
        AmqpValue::Boolean(b) => b.to_string(),
        AmqpValue::ShortShortInt(n) => n.to_string(),
        AmqpValue::ShortShortUInt(n) => n.to_string(),
        AmqpValue::ShortInt(n) => n.to_string(),
        AmqpValue::ShortUInt(n) => n.to_string(),
        AmqpValue::LongInt(n) => n.to_string(),
        AmqpValue::LongUInt(n) => n.to_string(),
        AmqpValue::LongLongInt(n) => n.to_string(),
        AmqpValue::Float(f) => f.to_string(),
        AmqpValue::Double(d) => d.to_string(),
        AmqpValue::DecimalValue(d) => decimal(d.value, d.scale),
        AmqpValue::LongString(s) => s.clone(),
        AmqpValue::Timestamp(t) => t.to_string(),
        AmqpValue::FieldArray(a) => a.iter().map(render).collect::<Vec<_>>().join(","),
        AmqpValue::FieldTable(t) => t
            .iter()
            .map(|(k, v)| format!("{k}={}", render(v)))
            .collect::<Vec<_>>()
            .join(","),
        AmqpValue::ByteArray(b) => String::from_utf8_lossy(b).into_owned(),
        AmqpValue::Void => String::new(),
    }
}

fn decimal(value: u32, scale: u8) -> String {
    let digits = value.to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_shell_names() {
        assert_eq!(header_name("x-retry-count"), "X_RETRY_COUNT");
        assert_eq!(header_name("a.b c"), "A_B_C");
        assert_eq!(header_name("été"), "_T_");
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(12345, 2), "123.45");
        assert_eq!(decimal(5, 3), "0.005");
        assert_eq!(decimal(7, 0), "7");
    }
}
