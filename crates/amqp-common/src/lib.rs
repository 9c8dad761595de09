//! What the five amqp-* tools share: the connection options and their rules, AMQP URIs,
//! `--authfile`, connecting under a deadline, and one error type mapped to exit codes.

pub mod addresses;
pub mod authfile;
pub mod cli;
pub mod connect;
pub mod error;
pub mod number;
pub mod options;
pub mod reconnect;
pub mod resolve;
pub mod tls;
pub mod uri;
pub mod wire;

pub use addresses::{Address, Addresses};
pub use cli::{HelpArgs, ParseOptions};
pub use connect::{Session, WireSession};
pub use error::{Error, Result};
pub use options::{ConnectionArgs, Endpoint};
pub use reconnect::ReconnectArgs;

/// Reads AMQP_URL, ignoring it when unset or not UTF-8.
pub fn amqp_url_env() -> Option<String> {
    std::env::var("AMQP_URL").ok()
}

impl ConnectionArgs {
    /// Resolves the options (with AMQP_URL) and connects to the first address that answers.
    pub fn connect(&self) -> Result<Session> {
        self.addresses()?.connect()
    }

    /// Resolves the options with AMQP_URL into the addresses to try, without connecting.
    pub fn addresses(&self) -> Result<Addresses> {
        self.resolve(amqp_url_env().as_deref())
    }
}

/// AMQP short strings (queue, exchange and routing-key names) hold at most 255 bytes; longer
/// ones are refused before anything is sent, with the option that carried them.
pub fn check_short_string(what: &str, value: &str) -> Result<()> {
    if value.len() > 255 {
        return Err(Error::config(format!(
            "{what} is {} bytes long; AMQP allows at most 255",
            value.len()
        )));
    }
    Ok(())
}
