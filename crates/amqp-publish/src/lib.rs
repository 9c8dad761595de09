//! amqp-publish (being written).

pub fn run() -> amqp_common::Result<()> {
    Err(amqp_common::Error::config("not implemented yet"))
}
