//! docs/compatibility.md is the map from each C-tool behaviour to the tests that check it, and
//! code and tests cite its anchors (`compatibility.md C-URL-7`). These tests keep the map and
//! its citations in step, so that neither can rot:
//!
//! - no source file cites a section with a section sign (the old citations of a document the
//!   repository does not have);
//! - every anchor cited anywhere in the sources is defined in the map, once;
//! - every test the map names (`path::function`) exists;
//! - every entry of the map names a test or says why it is untested;
//! - every test ARCHITECTURE.md names exists.
//!
//! The checks are plain functions over text; the last test feeds them broken input, so that a
//! check that stopped finding anything would fail there. No broker is needed.

use amqp_tools_tests::workspace_root;
use std::collections::BTreeMap;
use std::path::Path;

const MAP: &str = "docs/compatibility.md";

/// Where citations may appear: every directory holding code, tests, scripts or docs we write.
const SCANNED_DIRS: &[&str] = &[
    "crates", "tests", "examples", "bench", "scripts", "fuzz", "docs", ".ci", "k8s",
];
const SCANNED_FILES: &[&str] = &["README.md", "ARCHITECTURE.md", "Dockerfile", "Cargo.toml"];
/// Build output, fuzzing inputs and outputs: not ours to cite from.
const SKIPPED_DIRS: &[&str] = &["target", "corpus", "artifacts", ".git"];

/// Written as an escape so that this file does not cite anything itself.
const SECTION_SIGN: char = '\u{a7}';

/// One anchor of the map: the text of its entry, from its definition to the next one.
struct Entry {
    line: usize,
    text: String,
}

/// A text file under check: its path relative to the workspace root, and its content.
struct Source {
    path: String,
    text: String,
}

/// The anchors cited in `text` (`C-` then capital letters, `-`, digits), with their line
/// numbers. A letter, digit, `_` or `-` right before or after the token means it is part of
/// some other word (`CRC-32`, `XC-URL-1`, `C-URL-1x`), not a citation.
fn cited_anchors(text: &str) -> Vec<(usize, String)> {
    let in_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        // How many bytes from `from` on satisfy `pred`.
        let run = |from: usize, pred: fn(&u8) -> bool| {
            bytes[from.min(bytes.len())..]
                .iter()
                .take_while(|b| pred(b))
                .count()
        };
        for (at, _) in line.match_indices("C-") {
            if at > 0 && (in_word(bytes[at - 1]) || bytes[at - 1] == b'-') {
                continue;
            }
            let area = run(at + 2, u8::is_ascii_uppercase);
            let dash = at + 2 + area;
            if area == 0 || bytes.get(dash) != Some(&b'-') {
                continue;
            }
            let digits = run(dash + 1, u8::is_ascii_digit);
            let end = dash + 1 + digits;
            if digits > 0 && !bytes.get(end).is_some_and(|&b| in_word(b)) {
                found.push((n + 1, line[at..end].to_string()));
            }
        }
    }
    found
}

/// The map's entries by anchor. An entry is a list item starting with the anchor in bold
/// (`- **C-URL-7** ...`); it runs to the next entry or heading. A second definition of the
/// same anchor is an error.
fn entries(map: &str) -> Result<BTreeMap<String, Entry>, Vec<String>> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in map.lines().enumerate() {
        let defined = line
            .strip_prefix("- **")
            .and_then(|rest| rest.split_once("**"))
            .map(|(anchor, _)| anchor.to_string())
            .filter(|anchor| cited_anchors(anchor).first().map(|(_, a)| a) == Some(anchor));
        if let Some(anchor) = defined {
            if let Some(first) = entries.get(&anchor) {
                errors.push(format!(
                    "{MAP}:{}: {anchor} is defined again (first at line {})",
                    n + 1,
                    first.line
                ));
                current = None;
                continue;
            }
            entries.insert(
                anchor.clone(),
                Entry {
                    line: n + 1,
                    text: String::new(),
                },
            );
            current = Some(anchor);
        } else if line.starts_with('#') {
            current = None;
        }
        if let Some(entry) = current.as_ref().and_then(|a| entries.get_mut(a)) {
            entry.text.push_str(line);
            entry.text.push('\n');
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// The tests an entry names: `` `path/to/file.rs::function` ``.
fn named_tests(entry: &str) -> Vec<(String, String)> {
    entry
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| quoted.split_once(".rs::"))
        .map(|(path, function)| (format!("{path}.rs"), function.to_string()))
        .collect()
}

/// Whether `source` defines a function named `name` (a `#[test]` or a proptest case).
fn defines_function(source: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    source
        .match_indices(&needle)
        .any(|(at, _)| matches!(source[at + needle.len()..].chars().next(), Some('(' | '<')))
}

/// Every problem with the map and the citations in `sources`; `read` returns the text of a
/// file the map names (relative to the workspace root), if it exists.
fn problems(map: &str, sources: &[Source], read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let entries = match entries(map) {
        Ok(entries) => entries,
        Err(errors) => return errors,
    };
    for source in sources {
        for (n, line) in source.text.lines().enumerate() {
            if line.contains(SECTION_SIGN) {
                problems.push(format!(
                    "{}:{}: a section-sign reference; cite an anchor of {MAP} instead, or say \
                     in words what is checked: {}",
                    source.path,
                    n + 1,
                    line.trim()
                ));
            }
        }
        for (line, anchor) in cited_anchors(&source.text) {
            if !entries.contains_key(&anchor) {
                problems.push(format!(
                    "{}:{line}: cites {anchor}, which {MAP} does not define",
                    source.path
                ));
            }
        }
    }
    for (anchor, entry) in &entries {
        let tests = named_tests(&entry.text);
        if tests.is_empty() && !entry.text.contains("Untested") {
            problems.push(format!(
                "{MAP}:{}: {anchor} names no test and does not say why it is untested",
                entry.line
            ));
        }
        for (path, function) in tests {
            match read(&path) {
                None => problems.push(format!(
                    "{MAP}:{}: {anchor} names {path}, which does not exist",
                    entry.line
                )),
                Some(text) if !defines_function(&text, &function) => problems.push(format!(
                    "{MAP}:{}: {anchor} names {path}::{function}, which does not exist",
                    entry.line
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// The text files under the scanned directories (binary files are skipped).
fn repository_sources() -> Vec<Source> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Source>) {
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<_> = listing.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_deref().unwrap_or("")) {
                    walk(root, &path, out);
                }
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(Source {
                    path: rel.to_string_lossy().into_owned(),
                    text,
                });
            }
        }
    }
    let root = workspace_root();
    let mut sources = Vec::new();
    for dir in SCANNED_DIRS {
        walk(&root, &root.join(dir), &mut sources);
    }
    for file in SCANNED_FILES {
        if let Ok(text) = std::fs::read_to_string(root.join(file)) {
            sources.push(Source {
                path: file.to_string(),
                text,
            });
        }
    }
    sources
}

fn read_from_workspace(path: &str) -> Option<String> {
    std::fs::read_to_string(workspace_root().join(path)).ok()
}

#[test]
fn citations_and_the_compatibility_map_agree() {
    let map = read_from_workspace(MAP).expect("docs/compatibility.md exists");
    let sources = repository_sources();
    assert!(
        sources.iter().any(|s| s.path.ends_with("tests/consume.rs"))
            && sources
                .iter()
                .any(|s| s.path.ends_with("amqp-common/src/cli.rs")),
        "the scan found no sources: is the workspace root right?"
    );
    let found = problems(&map, &sources, read_from_workspace);
    assert!(
        found.is_empty(),
        "{} problem(s) between the sources and {MAP}:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_map_covers_every_area_it_lists() {
    // Each area in the map's table of areas has at least one entry.
    let map = read_from_workspace(MAP).expect("docs/compatibility.md exists");
    let entries = entries(&map).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let table_start = map.find("| area |").expect("the table of areas");
    let table_end = map[table_start..]
        .find("\n\n")
        .map_or(map.len(), |e| table_start + e);
    for line in map[table_start..table_end].lines() {
        for area in line.split('[').skip(1).filter_map(|s| s.split(']').next()) {
            let prefix = format!("{area}-");
            assert!(
                entries.keys().any(|a| a.starts_with(&prefix)),
                "the area {area} has no entry in {MAP}"
            );
        }
    }
}

#[test]
fn the_architecture_page_names_real_tests() {
    // ARCHITECTURE.md names tests by file name only (`get.rs::closed_stdout_ends_by_sigpipe`).
    let page = read_from_workspace("ARCHITECTURE.md").expect("ARCHITECTURE.md exists");
    let named = named_tests(&page);
    assert!(
        !named.is_empty(),
        "ARCHITECTURE.md names no test: has its format changed?"
    );
    let sources = repository_sources();
    let missing: Vec<String> = named
        .iter()
        .filter(|(file, function)| {
            !sources.iter().any(|s| {
                (s.path == *file || s.path.ends_with(&format!("/{file}")))
                    && defines_function(&s.text, function)
            })
        })
        .map(|(file, function)| format!("{file}::{function}"))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names tests that do not exist: {missing:?}"
    );
}

/// An anchor built at run time, so that this file's own text cites nothing.
fn anchor(area: &str, n: u32) -> String {
    format!("C-{area}-{n}")
}

#[test]
fn the_checks_find_broken_citations() {
    let good = anchor("GOOD", 1);
    let map = format!(
        "# Map\n\n- **{good}** A rule.\n  Tests: `tests/tests/x.rs::real_test`\n\
         - **{}** Says nothing about tests.\n\
         - **{}** Names a missing test.\n  Tests: `tests/tests/x.rs::gone`, `tests/tests/y.rs::any`\n\
         - **{}** Not tested.\n  Untested: cannot be observed.\n",
        anchor("BARE", 1),
        anchor("LOST", 1),
        anchor("OPEN", 1),
    );
    let read = |path: &str| {
        (path == "tests/tests/x.rs")
            .then(|| "#[test]\nfn real_test() {}\nfn gone_too() {}\n".into())
    };
    let source = |path: &str, text: String| Source {
        path: path.into(),
        text,
    };
    let sources = [
        source("a.rs", format!("// compatibility.md {good}: fine\n")),
        source(
            "b.rs",
            format!("// {SECTION_SIGN}12.40 and {SECTION_SIGN}11.3\n"),
        ),
        source("c.rs", format!("// see {} and {good}\n", anchor("NOPE", 9))),
        // Not citations: parts of longer words.
        source("d.rs", format!("// CRC-32, X{good}, {good}x, C-url-1\n")),
    ];
    let found = problems(&map, &sources, read);
    let expect = [
        "b.rs:1: a section-sign reference".to_string(),
        format!("c.rs:1: cites {}", anchor("NOPE", 9)),
        format!("{} names no test", anchor("BARE", 1)),
        format!("{} names tests/tests/x.rs::gone, which", anchor("LOST", 1)),
        format!(
            "{} names tests/tests/y.rs, which does not exist",
            anchor("LOST", 1)
        ),
    ];
    for e in &expect {
        assert!(
            found.iter().any(|p| p.contains(e.as_str())),
            "not reported: {e}\nreported:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(
        found.len(),
        expect.len(),
        "unexpected reports:\n{}",
        found.join("\n")
    );

    // A second definition of an anchor is reported by itself.
    let twice = format!("- **{good}** One.\n  Untested: x\n- **{good}** Two.\n  Untested: y\n");
    let found = problems(&twice, &[], |_| None);
    assert!(
        found.len() == 1 && found[0].contains("defined again (first at line 1)"),
        "{found:?}"
    );
}
