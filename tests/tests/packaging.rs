//! Packaging: the checked-in man pages and completions are what amqp-docgen generates from the
//! tools' clap definitions; the man pages render; the completions load in bash (and zsh and
//! fish when those shells are installed); the .deb replaces Debian's amqp-tools and runs the
//! tutorial from /usr/bin (AMQP_TEST_DEB=1, --ignored); the release tarball installs into a
//! prefix and its static binaries work (AMQP_TEST_TARBALL=1, --ignored). The arm64 .deb and the
//! aarch64 tarball, cross-built here, are checked the same way with their binaries run under
//! emulation (amqp_tools_tests::arch); the arm64 .deb is inspected with dpkg-deb, never
//! installed.

use amqp_tools_tests::arch::Arch;
use amqp_tools_tests::{skip, temp_vhost, unique, workspace_root, Broker, Cmd, Output};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOOLS: [&str; 5] = [
    "amqp-publish",
    "amqp-consume",
    "amqp-get",
    "amqp-declare-queue",
    "amqp-delete-queue",
];

/// Each tool's page must show the tutorial's command for it.
const TUTORIAL: [(&str, &str); 5] = [
    (
        "amqp-declare-queue",
        "amqp-declare-queue --url=$BROKER_URL -q job1 -d",
    ),
    (
        "amqp-publish",
        "amqp-publish --url=$BROKER_URL -r job1 -p -b apple",
    ),
    (
        "amqp-consume",
        "amqp-consume --url=$BROKER_URL -q job1 -c 1 /worker",
    ),
    ("amqp-get", "amqp-get --url=$BROKER_URL -q job1"),
    (
        "amqp-delete-queue",
        "amqp-delete-queue --url=$BROKER_URL -q job1",
    ),
];

const FRUITS: [&str; 8] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "lemon", "melon",
];

/// A cold release or musl build on the 2-core CI machine takes many minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);

fn generated_files() -> Vec<String> {
    let mut files = Vec::new();
    for t in TOOLS {
        files.push(format!("man/{t}.1"));
        files.push(format!("completions/{t}.bash"));
        files.push(format!("completions/_{t}"));
        files.push(format!("completions/{t}.fish"));
    }
    files
}

/// Names under `dir` that the generator owns (amqp-*), relative to `root`.
fn owned_files(root: &Path, dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("amqp-") || n.starts_with("_amqp-"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    names.sort();
    names
}

fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let root = workspace_root();
    let fresh = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Cmd::new(PathBuf::from(cargo))
        .args(["run", "--quiet", "-p", "amqp-docgen", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--")
        .arg(fresh.path())
        .timeout(BUILD_TIMEOUT)
        .run()
        .expect_status(0);

    let hint = "run scripts/gen-docs and commit man/ and completions/ (the tools' flags or help \
                changed since they were generated)";
    let mut expected = generated_files();
    expected.sort();
    for dir in ["man", "completions"] {
        let generated = owned_files(fresh.path(), dir);
        let checked_in = owned_files(&root, dir);
        let want: Vec<&String> = expected
            .iter()
            .filter(|f| f.starts_with(&format!("{dir}/")))
            .collect();
        assert_eq!(
            generated.iter().collect::<Vec<_>>(),
            want,
            "amqp-docgen wrote other files than expected in {dir}/"
        );
        assert_eq!(checked_in, generated, "{dir}/ differs in its files: {hint}");
    }
    let mut stale = Vec::new();
    for file in &expected {
        let new = std::fs::read(fresh.path().join(file)).expect("generated file");
        let old = std::fs::read(root.join(file)).unwrap_or_default();
        if new != old {
            stale.push(file.as_str());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {}; {hint}",
        stale.join(", ")
    );
}

/// `man -l` output as plain text, 80 columns, with groff's warnings on stderr.
fn render_man(page: &Path) -> Output {
    assert!(
        have("man"),
        "man is not installed: apt-get install man-db (needed to check the man pages)"
    );
    Cmd::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env_remove("MAN_KEEP_FORMATTING")
        .env("LC_ALL", "C.UTF-8")
        .timeout(Duration::from_secs(30))
        .run()
}

#[test]
fn man_pages_render_with_examples_and_exit_status() {
    let root = workspace_root();
    for (tool, tutorial_command) in TUTORIAL {
        let out = render_man(&root.join(format!("man/{tool}.1")));
        out.expect_status(0);
        assert_eq!(out.stderr, "", "groff warnings for {tool}.1");
        let text = out.stdout_str();
        for heading in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "CONNECTION OPTIONS",
            "ENVIRONMENT",
            "EXIT STATUS",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                text.lines().any(|l| l == heading),
                "{tool}.1 has no {heading} section:\n{text}"
            );
        }
        // man justifies the NAME line: compare with runs of blanks squeezed.
        let name_line = text
            .lines()
            .skip_while(|l| *l != "NAME")
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            name_line.starts_with(&format!("{tool} - ")),
            "{tool}.1 NAME line {name_line:?}"
        );
        assert!(
            text.lines().any(|l| l.trim() == tutorial_command),
            "{tool}.1 lacks the tutorial's `{tutorial_command}` on a line of its own:\n{text}"
        );
        // Every flag the tool accepts is documented (spot checks across the option groups).
        for flag in ["--url", "--connect-timeout", "--help", "--version"] {
            assert!(text.contains(flag), "{tool}.1 does not mention {flag}");
        }
        let no_width_overflow = text
            .lines()
            .filter(|l| !l.contains("$BROKER_URL") && !l.contains("amqp-"))
            .all(|l| l.chars().count() <= 80);
        assert!(
            no_width_overflow,
            "{tool}.1 prose wider than MANWIDTH:\n{text}"
        );
    }
    // Exit statuses that scripts rely on.
    let get = render_man(&root.join("man/amqp-get.1")).stdout_str();
    let exit = get
        .split("EXIT STATUS")
        .nth(1)
        .and_then(|s| s.split("EXAMPLES").next())
        .unwrap_or_default()
        .to_string();
    assert!(exit.contains("2") && exit.contains("empty"), "{exit}");
    let whatis = Cmd::new("lexgrog").arg(root.join("man/amqp-get.1")).run();
    if whatis.status() != 127 && !whatis.stderr.contains("No such file") {
        assert!(
            whatis
                .stdout_str()
                .contains("\"amqp-get - take one message off"),
            "whatis line: {}",
            whatis.stdout_str()
        );
    }
}

#[test]
fn bash_completions_load_and_complete() {
    let root = workspace_root();
    for tool in TOOLS {
        let script = format!("source completions/{tool}.bash && complete -p {tool}");
        let out = Cmd::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .current_dir(&root)
            .run();
        out.expect_status(0);
        assert_eq!(out.stderr, "", "{tool}.bash printed errors when sourced");
        assert!(
            out.stdout_str().contains(&format!(" {tool}\n")) && out.stdout_str().contains("-F "),
            "{}",
            out.stdout_str()
        );
    }
    // The completion function really completes: a long option, and an enum's values.
    let complete = |tool: &str, words: &[&str]| -> String {
        let func = format!("_{}", tool.replace('-', "__"));
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source completions/{tool}.bash\n\
             COMP_WORDS=({tool} {words})\nCOMP_CWORD={cword}\n\
             COMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
             {func} {tool} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = quoted.join(" "),
            cword = words.len(),
        );
        let out = Cmd::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .current_dir(&root)
            .run();
        out.expect_status(0);
        out.stdout_str()
    };
    assert_eq!(complete("amqp-get", &["--que"]), "--queue\n");
    assert_eq!(
        complete("amqp-declare-queue", &["--queue-type", ""]),
        "classic\nquorum\nstream\n"
    );
    assert_eq!(
        complete("amqp-consume", &["--on-failure", ""]),
        "hold\nrequeue\nreject\n"
    );
    assert!(complete("amqp-publish", &["--"]).contains("--routing-key\n"));
}

#[test]
fn zsh_and_fish_completions_load_when_those_shells_exist() {
    let root = workspace_root();
    let mut checked = 0;
    if have("zsh") {
        for tool in TOOLS {
            let out = Cmd::new("zsh")
                .args(["-n", &format!("completions/_{tool}")])
                .current_dir(&root)
                .run();
            out.expect_status(0);
            assert_eq!(out.stderr, "", "zsh -n _{tool}");
            // compinit finds it on fpath by its #compdef line.
            let script = format!(
                "fpath=(completions $fpath); autoload -U compinit; compinit -u -D; \
                 print -r -- ${{_comps[{tool}]}}"
            );
            let out = Cmd::new("zsh")
                .args(["-f", "-c", &script])
                .current_dir(&root)
                .run();
            out.expect_status(0);
            assert_eq!(out.stdout_str(), format!("_{tool}\n"), "{}", out.stderr);
        }
        checked += 1;
    } else {
        eprintln!("NOTE: zsh not installed; zsh completions not checked");
    }
    if have("fish") {
        for tool in TOOLS {
            let script = format!("source completions/{tool}.fish; and complete -C '{tool} --u'");
            let out = Cmd::new("fish")
                .args(["--no-config", "-c", &script])
                .current_dir(&root)
                .run();
            out.expect_status(0);
            assert_eq!(out.stderr, "", "fish: sourcing {tool}.fish");
            assert!(out.stdout_str().contains("--url\t"), "{}", out.stdout_str());
        }
        let out = Cmd::new("fish")
            .args([
                "--no-config",
                "-c",
                "source completions/amqp-get.fish; and complete -C 'amqp-get -'",
            ])
            .current_dir(&root)
            .run();
        assert!(out.stdout_str().contains("-?\t"), "{}", out.stdout_str());
        checked += 1;
    } else {
        eprintln!("NOTE: fish not installed; fish completions not checked");
    }
    eprintln!("checked completions for {checked} of zsh, fish");
}

// ---------------------------------------------------------------------------------------------
// The Debian package.

fn root_sh(script: &str) -> Output {
    Cmd::new("sh")
        .args(["-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(Duration::from_secs(10 * 60))
        .run()
}

/// `Some(version)` when the package is installed.
fn installed_version(package: &str) -> Option<String> {
    let out = Cmd::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}${Version}", package])
        .run();
    let text = out.stdout_str();
    text.strip_prefix("ii ")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Puts the machine's packages back as they were: Debian's amqp-tools at the version that was
/// installed (which removes ours through its Conflicts), or no amqp-tools at all.
struct RestorePackages {
    c_version: Option<String>,
    /// The C package's .deb, fetched before ours went in, so restoring needs no apt lists.
    c_deb: Option<PathBuf>,
    _download_dir: amqp_tools_tests::tempfile::TempDir,
}

impl RestorePackages {
    fn restore(&self) -> Result<(), String> {
        let out = match (&self.c_version, &self.c_deb) {
            (Some(_), Some(deb)) => root_sh(&format!(
                "apt-get install -y --allow-downgrades '{}'",
                deb.display()
            )),
            (Some(v), None) => root_sh(&format!(
                "apt-get install -y --allow-downgrades 'amqp-tools={v}'"
            )),
            (None, _) => root_sh("dpkg --purge amqp-tools-rs"),
        };
        if out.status() != 0 {
            return Err(format!(
                "restoring the packages failed (`{}`): {}",
                out.cmdline, out.stderr
            ));
        }
        let now = installed_version("amqp-tools");
        if now != self.c_version || installed_version("amqp-tools-rs").is_some() {
            return Err(format!(
                "after restoring, amqp-tools is {now:?} (expected {:?}) and amqp-tools-rs is {:?}",
                self.c_version,
                installed_version("amqp-tools-rs")
            ));
        }
        Ok(())
    }
}

impl Drop for RestorePackages {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!(
                "PACKAGES NOT RESTORED: {e}\nrun: apt-get install -y amqp-tools (and dpkg --purge amqp-tools-rs)"
            );
            if !std::thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

fn saved_c_package(version: &str, dir: &Path) -> Option<PathBuf> {
    let out = Cmd::new("apt-get")
        .args(["download", &format!("amqp-tools={version}")])
        .current_dir(dir)
        .timeout(Duration::from_secs(120))
        .run();
    let downloaded = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    if downloaded.is_some() {
        return downloaded;
    }
    eprintln!(
        "NOTE: apt-get download failed ({}); trying apt's cache",
        out.stderr.trim()
    );
    let cached = PathBuf::from(format!(
        "/var/cache/apt/archives/amqp-tools_{}_amd64.deb",
        version.replace(':', "%3a")
    ));
    cached.is_file().then_some(cached)
}

/// The control fields that make the package replace Debian's amqp-tools.
const REPLACES_THE_C_TOOLS: [&str; 4] = [
    "Package: amqp-tools-rs",
    "Provides: amqp-tools",
    "Conflicts: amqp-tools",
    "Replaces: amqp-tools",
];

/// `scripts/build-deb ARGS --out DIR`; the .deb it printed.
fn build_deb(args: &[&str], out: &Path) -> PathBuf {
    let root = workspace_root();
    let built = Cmd::new(root.join("scripts/build-deb"))
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(&root)
        .timeout(BUILD_TIMEOUT)
        .run();
    built.expect_status(0);
    let deb = PathBuf::from(built.stdout_str().lines().last().unwrap_or_default());
    assert!(deb.is_file(), "build-deb printed {:?}", built.stdout_str());
    deb
}

/// Each `Field: value` line is in the package's control file.
fn assert_control_fields(deb: &Path, lines: &[&str]) {
    let control = Cmd::new("dpkg-deb").arg("-f").arg(deb).run();
    control.expect_status(0);
    let control = control.stdout_str();
    for line in lines {
        assert!(
            control.lines().any(|l| l == *line),
            "{line} missing:\n{control}"
        );
    }
}

/// What the package puts where the shells and man look for it, for each tool (both
/// architectures).
fn deb_files() -> Vec<String> {
    let mut files = Vec::new();
    for t in TOOLS {
        files.push(format!("/usr/bin/{t}"));
        files.push(format!("/usr/share/man/man1/{t}.1.gz"));
        files.push(format!("/usr/share/bash-completion/completions/{t}"));
        files.push(format!("/usr/share/zsh/vendor-completions/_{t}"));
        files.push(format!("/usr/share/fish/vendor_completions.d/{t}.fish"));
    }
    files
}

/// The tutorial's commands through `sh -c`, with /usr/bin first on PATH.
fn tutorial_shell(url: &str, script: &str) -> Cmd {
    Cmd::new("sh")
        .args(["-c", script])
        .env("PATH", "/usr/bin:/bin")
        .env("BROKER_URL", url)
        .env("WORKER_SLEEP", "0.2")
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(60))
}

#[test]
#[ignore = "replaces Debian's amqp-tools on this machine: AMQP_TEST_DEB=1 cargo test -p amqp-tools-tests --test packaging -- --ignored deb"]
fn deb_replaces_the_c_tools_and_runs_the_tutorial() {
    if std::env::var("AMQP_TEST_DEB").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set AMQP_TEST_DEB=1 to let this test swap the machine's amqp-tools");
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "installing a .deb needs root"
    );
    let root = workspace_root();

    let download_dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    let c_version = installed_version("amqp-tools");
    let c_deb = c_version
        .as_deref()
        .and_then(|v| saved_c_package(v, download_dir.path()));
    let guard = RestorePackages {
        c_version: c_version.clone(),
        c_deb,
        _download_dir: download_dir,
    };

    let out_dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    let deb = build_deb(&[], out_dir.path());
    assert_control_fields(&deb, &REPLACES_THE_C_TOOLS);
    assert_static_layout(&deb);

    let install = root_sh(&format!("apt-get install -y '{}'", deb.display()));
    install.expect_status(0);
    assert!(installed_version("amqp-tools-rs").is_some());
    assert_eq!(
        installed_version("amqp-tools"),
        None,
        "the C package is still installed"
    );

    // dpkg -L lists every file where the shells and man look for them.
    let listed = Cmd::new("dpkg").args(["-L", "amqp-tools-rs"]).run();
    listed.expect_status(0);
    let listed = listed.stdout_str();
    let expected = deb_files();
    for path in &expected {
        assert!(
            listed.lines().any(|l| l == path),
            "dpkg -L amqp-tools-rs lacks {path}:\n{listed}"
        );
        assert!(Path::new(path).is_file(), "{path} is not installed");
    }

    // /usr/bin now holds ours: the C tools have no --version.
    for t in TOOLS {
        let out = Cmd::new(format!("/usr/bin/{t}")).arg("--version").run();
        out.expect_status(0);
        assert!(
            out.stdout_str().starts_with(&format!("{t} ")),
            "{}",
            out.stdout_str()
        );
    }
    let page = Cmd::new("man")
        .args(["amqp-consume"])
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .timeout(Duration::from_secs(30))
        .run();
    page.expect_status(0);
    assert!(page.stdout_str().contains("EXAMPLES"));

    // The tutorial, with the installed tools.
    let vhost = temp_vhost(&unique("deb-tutorial"));
    let url = vhost.url();
    let out = tutorial_shell(&url, "amqp-declare-queue --url=$BROKER_URL -q job1  -d").run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "job1\n");
    tutorial_shell(
        &url,
        "for f in apple banana cherry date fig grape lemon melon\n\
         do\n  amqp-publish --url=$BROKER_URL -r job1 -p -b $f\n\
         done",
    )
    .run()
    .expect_status(0);
    let broker = Broker::connect_to(&url);
    assert_eq!(broker.count("job1"), Some(8));
    let pod = format!(
        "amqp-consume --url=$BROKER_URL -q job1 -c 1 {}",
        root.join("examples/worker.sh").display()
    );
    let mut processed: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..4 {
        let pods = [
            tutorial_shell(&url, &pod).spawn(),
            tutorial_shell(&url, &pod).spawn(),
        ];
        for p in pods {
            let out = p.wait();
            out.expect_status(0);
            let line = out.stdout_str();
            let item = line
                .strip_prefix("Processing ")
                .unwrap_or_else(|| panic!("unexpected worker output {line:?}"))
                .trim_end()
                .to_string();
            *processed.entry(item).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = FRUITS.iter().map(|f| (f.to_string(), 1)).collect();
    assert_eq!(processed, expected, "each item processed exactly once");
    assert_eq!(broker.count("job1"), Some(0));
    let out = tutorial_shell(&url, "amqp-delete-queue --url=$BROKER_URL -q job1").run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "0\n");
    drop(broker);
    drop(vhost);

    drop(guard);
    assert_eq!(
        installed_version("amqp-tools"),
        c_version,
        "C package restored"
    );
    if c_version.is_some() {
        // The C tool again: no --version.
        let out = Cmd::new("/usr/bin/amqp-get").arg("--version").run();
        assert_eq!(out.status(), 1, "{}", out.stderr);
    }
}

/// A package of the static build: no dependency (no library of the target machine is needed),
/// the one binary `amqp-tools` with the five tool names as links to it, and every doc file.
fn assert_static_layout(deb: &Path) {
    // Static: no library of the target machine is needed.
    let depends = Cmd::new("dpkg-deb").arg("-f").arg(deb).arg("Depends").run();
    depends.expect_status(0);
    assert_eq!(
        depends.stdout_str().trim(),
        "",
        "Depends of a static package"
    );

    // `dpkg-deb -c` lines: mode, owner, size, date, time, ./path[ -> target].
    let listing = Cmd::new("dpkg-deb").arg("-c").arg(deb).run();
    listing.expect_status(0);
    let listing = listing.stdout_str();
    let entries: BTreeMap<String, (String, Option<String>)> = listing
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let path = words[5].trim_start_matches('.').to_string();
            let target = (words.get(6) == Some(&"->")).then(|| words[7].to_string());
            (path, (words[0].to_string(), target))
        })
        .collect();
    for path in deb_files() {
        assert!(
            entries.contains_key(&path),
            "{path} not in the package:\n{listing}"
        );
    }
    for t in TOOLS {
        let (mode, target) = &entries[&format!("/usr/bin/{t}")];
        assert!(
            mode.starts_with('l'),
            "/usr/bin/{t} is not a link:\n{listing}"
        );
        assert_eq!(target.as_deref(), Some("amqp-tools"), "/usr/bin/{t}");
    }
    assert_eq!(
        entries
            .get("/usr/bin/amqp-tools")
            .map(|(mode, _)| mode.as_str()),
        Some("-rwxr-xr-x"),
        "{listing}"
    );
}

/// The arm64 package, cross-built here and inspected with dpkg-deb, never installed: its
/// control fields, the static aarch64 binary under the five names with the docs where the amd64
/// package has them, and the unpacked tools run under emulation.
#[test]
fn arm64_deb_holds_the_static_tools_and_their_docs() {
    if Arch::host() == Arch::Aarch64 {
        skip("this machine is arm64: its package is the native one (the deb test)");
        return;
    }
    let out_dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    let deb = build_deb(&["--arch", "aarch64"], out_dir.path());
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("amqp-tools-rs_") && name.ends_with("_arm64.deb"),
        "{name}"
    );
    assert_control_fields(&deb, &REPLACES_THE_C_TOOLS);
    assert_control_fields(&deb, &["Architecture: arm64"]);
    assert_static_layout(&deb);

    let unpacked = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    Cmd::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path())
        .run()
        .expect_status(0);
    let bin = |t: &str| unpacked.path().join("usr/bin").join(t);
    let desc = Cmd::new("file").arg("-b").arg(bin("amqp-tools")).run();
    desc.expect_status(0);
    let desc = desc.stdout_str();
    assert!(
        desc.contains(Arch::Aarch64.file_says()) && desc.contains("statically linked"),
        "amqp-tools: {desc}"
    );
    let page = render_man(&unpacked.path().join("usr/share/man/man1/amqp-get.1.gz"));
    page.expect_status(0);
    assert!(page.stdout_str().contains("EXAMPLES"));
    if Arch::Aarch64.runnable() {
        for t in TOOLS {
            let out = Cmd::new(bin(t)).arg("--version").run();
            out.expect_status(0);
            assert!(
                out.stdout_str().starts_with(&format!("{t} ")),
                "{}",
                out.stdout_str()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The release tarball.

#[test]
#[ignore = "builds static musl binaries (slow): AMQP_TEST_TARBALL=1 cargo test -p amqp-tools-tests --test packaging -- --ignored tarball"]
fn release_tarball_installs_into_a_prefix_and_works() {
    if tarball_test_wanted() {
        check_release_tarball(Arch::host());
    }
}

/// The aarch64 tarball, cross-compiled here, checked the same way with its binaries run under
/// emulation.
#[test]
#[ignore = "builds static musl binaries (slow): AMQP_TEST_TARBALL=1 cargo test -p amqp-tools-tests --test packaging -- --ignored tarball"]
fn release_tarball_for_aarch64_installs_into_a_prefix_and_works() {
    if tarball_test_wanted() && Arch::Aarch64.runnable() {
        check_release_tarball(Arch::Aarch64);
    }
}

fn tarball_test_wanted() -> bool {
    let wanted = std::env::var("AMQP_TEST_TARBALL").as_deref() == Ok("1");
    if !wanted {
        eprintln!("SKIPPED: set AMQP_TEST_TARBALL=1 to build and check the release tarball");
    }
    wanted
}

/// `scripts/release-tarball --arch ARCH`: named for its architecture, checked by its SHA-256
/// file, installed into a prefix with tar alone, its static binaries working against the
/// broker, and reproducible.
fn check_release_tarball(arch: Arch) {
    let root = workspace_root();
    let out_dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    // A fixed time, so the second build below is comparable even if a commit lands meanwhile.
    let epoch = "1700000000";
    let built = Cmd::new(root.join("scripts/release-tarball"))
        .args(["--arch", arch.name()])
        .arg("--out")
        .arg(out_dir.path())
        .env("SOURCE_DATE_EPOCH", epoch)
        .current_dir(&root)
        .timeout(BUILD_TIMEOUT)
        .run();
    built.expect_status(0);
    let tarball = PathBuf::from(built.stdout_str().lines().last().unwrap_or_default());
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with("amqp-tools-")
            && name.ends_with(&format!("-{}-linux-musl.tar.gz", arch.name())),
        "{name}"
    );

    // The README's recipe: check the sum, unpack into a prefix with tar alone.
    let sum = Cmd::new("sha256sum")
        .args(["-c", &format!("{name}.sha256")])
        .current_dir(out_dir.path())
        .run();
    sum.expect_status(0);
    assert_eq!(sum.stdout_str(), format!("{name}: OK\n"));
    let prefix = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    Cmd::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(prefix.path())
        .arg("--strip-components=1")
        .run()
        .expect_status(0);
    // One static binary, the five tool names linked to it.
    let multi = prefix.path().join("bin/amqp-tools");
    // `file` is required (scripts/ensure-deps installs it): on x86_64 an x86_64 binary would
    // pass the runs below, so this is what proves the aarch64 tarball holds aarch64 code.
    let desc = Cmd::new("file").arg("-b").arg(&multi).run().stdout_str();
    assert!(
        desc.contains("statically linked") || desc.contains("static-pie linked"),
        "amqp-tools: {desc}"
    );
    assert!(desc.contains(arch.file_says()), "amqp-tools: {desc}");
    for t in TOOLS {
        let bin = prefix.path().join("bin").join(t);
        assert_eq!(
            std::fs::read_link(&bin).ok().as_deref(),
            Some(Path::new("amqp-tools")),
            "bin/{t} is not a link to amqp-tools"
        );
        let out = Cmd::new(&bin).arg("--version").run();
        out.expect_status(0);
        assert!(out.stdout_str().starts_with(&format!("{t} ")));
        for f in [
            format!("share/man/man1/{t}.1.gz"),
            format!("share/bash-completion/completions/{t}"),
            format!("share/zsh/site-functions/_{t}"),
            format!("share/fish/vendor_completions.d/{t}.fish"),
        ] {
            assert!(
                prefix.path().join(&f).is_file(),
                "{f} missing from the tarball"
            );
        }
    }
    let page = render_man(&prefix.path().join("share/man/man1/amqp-get.1.gz"));
    page.expect_status(0);
    assert!(page.stdout_str().contains("EXAMPLES"));

    // The unpacked static binaries talk to the broker.
    let broker = Broker::connect();
    let q = broker.temp_queue("tarball");
    let bin = |t: &str| prefix.path().join("bin").join(t);
    let url = amqp_tools_tests::broker_url();
    Cmd::new(bin("amqp-publish"))
        .args(["--url", &url, "-r", &q, "-b", "from the tarball"])
        .run()
        .expect_status(0);
    let out = Cmd::new(bin("amqp-get"))
        .args(["--url", &url, "-q", &q])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"from the tarball");
    assert_eq!(broker.count(&q), Some(0));

    // Reproducible: a second build gives the same bytes.
    let again_dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
    let again = Cmd::new(root.join("scripts/release-tarball"))
        .args(["--arch", arch.name()])
        .arg("--out")
        .arg(again_dir.path())
        .env("SOURCE_DATE_EPOCH", epoch)
        .current_dir(&root)
        .timeout(BUILD_TIMEOUT)
        .run();
    again.expect_status(0);
    let first = std::fs::read(&tarball).expect("tarball");
    let second_path = again_dir.path().join(&name);
    let second = std::fs::read(&second_path).expect("second tarball");
    assert!(
        first == second,
        "two builds of {name} differ in {:?} (did the sources change between the builds?)",
        differing_members(&tarball, &second_path)
    );
}

/// Paths inside two tarballs whose contents differ, for the failure message.
fn differing_members(a: &Path, b: &Path) -> Vec<String> {
    let unpack = |tarball: &Path| {
        let dir = amqp_tools_tests::tempfile::tempdir().expect("temp dir");
        Cmd::new("tar")
            .arg("xzf")
            .arg(tarball)
            .arg("-C")
            .arg(dir.path())
            .run()
            .expect_status(0);
        dir
    };
    let (da, db) = (unpack(a), unpack(b));
    let listing = Cmd::new("find")
        .args([".", "-type", "f"])
        .current_dir(da.path())
        .run()
        .stdout_str();
    let mut differ: Vec<String> = listing
        .lines()
        .filter(|f| std::fs::read(da.path().join(f)).ok() != std::fs::read(db.path().join(f)).ok())
        .map(str::to_string)
        .collect();
    differ.sort();
    differ
}
