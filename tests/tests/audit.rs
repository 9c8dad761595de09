//! deny.toml ignores two advisories because the tools never run the affected code: idna 0.1.5,
//! reachable only through amq-protocol's URI parser (amq_protocol::uri, url 1.7), and net2,
//! reachable only through mio 0.6 functions the tools do not call. The linker keeps only code
//! that is called, so the linked tools must hold none of it; this checks that the reasoning
//! still holds after a change (a call to amiquip's Connection::open(url) would break it).

use amqp_tools_tests::{ours, Cmd, TOOLS};
use std::time::Duration;

/// Demangled symbol prefixes of the code the ignored advisories are about. url 1.7 has no entry
/// of its own: amq_protocol::uri is its only caller, and the tools do link url 2 (amiquip's error
/// type holds a url 2 `Url`), which symbol names cannot tell from url 1.7. Any idna at all would
/// be new: url 2's is not linked either.
const UNREACHABLE: [&str; 3] = ["amq_protocol::uri::", "idna::", "net2::"];

#[test]
fn the_tools_link_no_code_of_the_ignored_advisories() {
    for tool in std::iter::once("amqp-tools").chain(TOOLS) {
        let out = Cmd::new("nm")
            .args(["--demangle", "--defined-only"])
            .arg(ours(tool))
            .timeout(Duration::from_secs(60))
            .run();
        out.expect_status(0);
        let symbols = out.stdout_str();
        // The check means something only if the symbols are there: amiquip's is.
        assert!(
            symbols.contains("amiquip::connection::Connection::insecure_open_stream"),
            "{tool}: no symbols to look at (stripped?)"
        );
        for line in symbols.lines() {
            let name = line.splitn(3, ' ').nth(2).unwrap_or("");
            let hit = UNREACHABLE.iter().find(|p| {
                name.starts_with(*p)
                    || name.starts_with(&format!("<{p}"))
                    || name.contains(&format!(" {p}"))
            });
            assert!(
                hit.is_none(),
                "{tool} now links {name}: review the ignores in deny.toml (if it is idna 1.x, \
                 through url 2, it is not the advisory's idna 0.1.5: say so there and narrow \
                 this test)"
            );
        }
    }
}
