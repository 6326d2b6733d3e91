//! The docs, checked against the binary: every config key the config types
//! accept is in docs/configuration.md (the keys are found by asking the
//! decoder, so a new key fails here until it is documented), every metric
//! exported is in docs/metrics.md and every one documented is exported,
//! every YAML config in the docs validates (or is marked a fragment, whose
//! keys must all be accepted), every code fence is closed, and every
//! `mailcanary <verb>` shown exists.
//!
//! docs/configuration.md's convention: each section heading names in
//! backticks the block it documents (`global.health`, `type: smtp`,
//! `imap.oauth2`), and its tables' first cells the keys, relative to it.

use mailcanary::config;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every Markdown file a user reads.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for dir in ["docs", "deploy", "deploy/kubernetes", "deploy/debian", "alerts", "dashboards"] {
        if let Ok(entries) = std::fs::read_dir(repo().join(dir)) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------- config keys

/// One step from the top of a config to a key.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    /// An item of a list.
    Item,
    /// A kind picked by `type:` (providers).
    Kind(String),
}

const PROBE: &str = "zz_probe";

/// The document that puts `value` at `path`, as JSON (which YAML reads).
fn document(path: &[Step], value: serde_json::Value) -> String {
    let mut v = value;
    for step in path.iter().rev() {
        v = match step {
            Step::Key(k) => serde_json::json!({ k: v }),
            Step::Item => serde_json::json!([v]),
            Step::Kind(kind) => {
                let mut v = v;
                v.as_object_mut().expect("a kind of a mapping").insert("type".into(), kind.clone().into());
                v
            }
        };
    }
    v.to_string()
}

/// Every problem config::parse finds in `doc`, as text.
fn problems(doc: &str) -> Vec<String> {
    match config::parse(doc, &HashMap::new()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(|p| p.message.clone()).collect(),
    }
}

/// The names a decoder's "expected one of a, b, c" lists after `marker`.
fn listed(problems: &[String], marker: &str) -> Option<Vec<String>> {
    let message = problems.iter().find(|m| m.starts_with(marker))?;
    let rest = message.split_once("expected ").map_or("", |(_, r)| r);
    let rest = rest.strip_prefix("one of ").unwrap_or(rest);
    Some(rest.split(", ").map(|s| s.trim_matches(['`', ' '].as_ref()).to_string()).filter(|s| !s.is_empty()).collect())
}

/// The keys a mapping at `path` accepts, if it is a mapping with fixed keys.
fn fields(path: &[Step]) -> Option<Vec<String>> {
    let got = problems(&document(path, serde_json::json!({ PROBE: 1 })));
    listed(&got, &format!("unknown field `{PROBE}`"))
}

/// Every key path under `path` (a mapping of `keys`), depth first.
fn walk(path: Vec<Step>, keys: Vec<String>, out: &mut Vec<Vec<Step>>) {
    for key in keys {
        let mut at = path.clone();
        at.push(Step::Key(key));
        if at.len() > 8 {
            out.push(at);
            continue;
        }
        if let Some(keys) = fields(&at) {
            walk(at, keys, out);
            continue;
        }
        let mut item = at.clone();
        item.push(Step::Item);
        if let Some(keys) = fields(&item) {
            walk(item, keys, out);
            continue;
        }
        // A list of kinds picked by `type` (traffic.sources): each kind's keys.
        let kinds = problems(&document(&item, serde_json::json!({ "type": PROBE })));
        if let Some(kinds) = listed(&kinds, &format!("unknown variant `{PROBE}`")) {
            let mut typed = at.clone();
            typed.push(Step::Key("type".into()));
            out.push(typed);
            for kind in kinds {
                let mut at = item.clone();
                at.push(Step::Kind(kind));
                let keys = fields(&at).unwrap_or_else(|| panic!("{at:?} has no keys"));
                walk(at, keys, out);
            }
            continue;
        }
        out.push(at);
    }
}

/// Every config key, as dotted paths with a kind's name where one picks it
/// (`providers.smtp.host`).
fn config_keys() -> Vec<Vec<Step>> {
    let top = problems(&format!("{PROBE}: 1"));
    let sections = listed(&top, &format!("unknown key \"{PROBE}\"")).expect("the top-level keys are listed");
    let mut out = Vec::new();
    for section in sections {
        let at = vec![Step::Key(section.clone())];
        if let Some(keys) = fields(&at) {
            walk(at, keys, &mut out);
            continue;
        }
        let item = vec![Step::Key(section.clone()), Step::Item];
        if let Some(keys) = fields(&item) {
            walk(item, keys, &mut out);
            continue;
        }
        // A list of kinds picked by `type`: each kind's keys.
        let kinds = problems(&document(&item, serde_json::json!({ "type": PROBE })));
        let kinds = listed(&kinds, &format!("unknown variant `{PROBE}`"))
            .unwrap_or_else(|| panic!("{section}: neither keys nor kinds found: {kinds:?}"));
        out.push(vec![Step::Key(section.clone()), Step::Key("type".into())]);
        for kind in kinds {
            let mut at = item.clone();
            at.push(Step::Kind(kind));
            let keys = fields(&at).unwrap_or_else(|| panic!("{at:?} has no keys"));
            walk(at, keys, &mut out);
        }
    }
    out
}

/// The dotted names a key may be documented under: with and without the
/// kind that picks it.
fn dotted(path: &[Step]) -> Vec<String> {
    let with: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) | Step::Kind(k) => Some(k.as_str()),
            Step::Item => None,
        })
        .collect();
    let without: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let mut names = vec![with.join("."), without.join(".")];
    names.dedup();
    names
}

/// Backticked words of a line.
fn ticked(line: &str) -> Vec<String> {
    line.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// (section scopes, key) for every key cell of every table in `doc`.
fn documented(doc: &str) -> Vec<(Vec<String>, String)> {
    let mut scopes: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            scopes = ticked(line).iter().map(|s| s.strip_prefix("type: ").unwrap_or(s).replace("[]", "")).collect();
        } else if let Some(row) = line.strip_prefix('|') {
            let first = row.split('|').next().unwrap_or("");
            for key in ticked(first) {
                out.push((scopes.clone(), key));
            }
        }
    }
    out
}

fn is_documented(names: &[String], table: &[(Vec<String>, String)]) -> bool {
    table.iter().any(|(scopes, key)| {
        scopes.iter().any(|scope| {
            let full = format!("{scope}.{key}");
            names.iter().any(|n| *n == full || n.ends_with(&format!(".{full}")))
        })
    })
}

#[test]
fn every_config_key_is_in_the_configuration_reference() {
    let keys = config_keys();
    assert!(keys.len() > 100, "the probe found too few keys: {keys:?}");
    // The probe finds what it must: a key of each part.
    for known in [
        "global.health.overdue_after",
        "providers.smtp.host",
        "inboxes.imap.oauth2.token_url",
        "traffic.sources.ses_sns.topic_arns",
    ] {
        assert!(keys.iter().any(|k| dotted(k)[0] == known), "{known} not found among {keys:#?}");
    }
    let table = documented(&read("docs/configuration.md"));
    let missing: Vec<String> =
        keys.iter().map(|k| dotted(k)).filter(|names| !is_documented(names, &table)).map(|n| n[0].clone()).collect();
    assert!(missing.is_empty(), "keys missing from docs/configuration.md:\n  {}", missing.join("\n  "));
}

// -------------------------------------------------------------------- metrics

/// Every metric family the binary exports, every series made as the service does.
fn exported_metrics() -> BTreeSet<String> {
    use mailcanary::metrics::{Detail, Metrics, RouteLabels};
    let m = Metrics::new();
    m.set_detail(Detail::ALL, &[]);
    let route = RouteLabels::new("p", "s", "i");
    m.init_route(&route);
    m.init_expectations(&route, &mailcanary::outcome::Expectation::ALL);
    m.init_inbox("i");
    m.set_provider_state("s", mailcanary::health::State::Healthy);
    m.task_started("route:p");
    m.traffic.init_source("src", "s");
    let hop = mailcanary::metrics::HopLabels { route: route.clone(), hop: "1".into() };
    m.hop_delay.get_or_create(&hop).observe(1.0);
    m.encode_text()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_metric_exported_is_documented_and_every_one_documented_is_exported() {
    let exported = exported_metrics();
    assert!(exported.contains("mailcanary_time_seconds") && exported.contains("mailcanary_task_restarts_total"));
    let doc = read("docs/metrics.md");
    let named: BTreeSet<String> =
        regex::Regex::new(r"mailcanary_[a-z0-9_]+").unwrap().find_iter(&doc).map(|m| m.as_str().to_string()).collect();
    let headed: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("### "))
        .flat_map(ticked)
        .filter(|t| t.starts_with("mailcanary_"))
        .collect();
    let missing: Vec<&String> = exported.iter().filter(|m| !headed.contains(*m)).collect();
    assert!(missing.is_empty(), "exported but without a section (### `name`) in docs/metrics.md: {missing:?}");
    // Whatever the scrape above makes: every family registered, by its name in the source.
    let registered: Vec<String> = regex::Regex::new(r#"register\(\s*"([a-z0-9_]+)""#)
        .unwrap()
        .captures_iter(&(read("src/metrics.rs") + &read("src/metrics/register.rs") + &read("src/metrics/traffic.rs")))
        .map(|c| format!("mailcanary_{}", &c[1]))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let undocumented: Vec<&String> =
        registered.iter().filter(|r| !headed.contains(*r) && !headed.contains(&format!("{r}_total"))).collect();
    assert!(undocumented.is_empty(), "registered but without a section in docs/metrics.md: {undocumented:?}");
    let series = |name: &str| {
        exported.contains(name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|base| exported.contains(base)))
    };
    let unknown: Vec<&String> = named.iter().filter(|m| !series(m)).collect();
    assert!(unknown.is_empty(), "docs/metrics.md names metrics the binary does not export: {unknown:?}");
}

// ---------------------------------------------------------------- code blocks

/// A fenced block: its file, first line, info string and text.
struct Block {
    file: String,
    line: usize,
    info: String,
    text: String,
}

/// Every fenced block of `path`; panics on a fence left open.
fn blocks(path: &Path) -> Vec<Block> {
    let doc = std::fs::read_to_string(path).unwrap();
    let file = path.strip_prefix(repo()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in doc.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, open.take()) {
            (Some(info), None) => {
                open = Some(Block { file: file.clone(), line: n + 1, info: info.trim().into(), text: String::new() })
            }
            (Some(_), Some(block)) => out.push(block),
            (None, Some(mut block)) => {
                block.text.push_str(line);
                block.text.push('\n');
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    if let Some(b) = open {
        panic!("{}:{}: a ``` fence is never closed", b.file, b.line);
    }
    out
}

#[test]
fn every_code_fence_is_closed_and_holds_no_prose() {
    let heading = regex::Regex::new(r"^#{2,6} \S").unwrap();
    let mut wrong = Vec::new();
    for path in markdown_files() {
        for b in blocks(&path) {
            if matches!(b.info.as_str(), "markdown" | "md" | "text") {
                continue;
            }
            for (i, line) in b.text.lines().enumerate() {
                // A Markdown heading or a table row in code is prose a fence swallowed.
                if heading.is_match(line) || (line.starts_with("| ") && line.trim_end().ends_with('|')) {
                    wrong.push(format!("{}:{}: prose inside a ```{} block: {line}", b.file, b.line + 1 + i, b.info));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A P-256 public key (base64 DER), for `${..._WEBHOOK_KEY}`.
const SENDGRID_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETaDQvkikz04mrVm5Ri41P4kWmEd7ygdiJEsczQCxUgOTghWZ7kB4Zp40hBKVivEE5QTNJKfqj3fM75OfDxW7aw==";

/// Each `${VAR}` of the docs set to something of its kind.
fn env_for(text: &str, ca: &str) -> HashMap<String, String> {
    let var = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").unwrap();
    var.captures_iter(text)
        .map(|c| {
            let name = c[1].to_string();
            let value = if name.contains("PORT") {
                "10025".to_string()
            } else if name.ends_with("WEBHOOK_SECRET") {
                // A Svix signing secret: whsec_ and base64.
                "whsec_cGxhY2Vob2xkZXItMDEyMzQ1Njc4OWFiY2RlZg==".to_string()
            } else if name.ends_with("WEBHOOK_KEY") {
                // A verification key as SendGrid shows it: a P-256 public key, base64 DER.
                SENDGRID_KEY.to_string()
            } else if name.ends_with("CA") {
                ca.to_string()
            } else {
                "placeholder-0123456789abcdef".to_string()
            };
            (name, value)
        })
        .collect()
}

const SECTIONS: [&str; 5] = ["global", "providers", "inboxes", "probes", "traffic"];

/// A config that names what examples refer to, to check fragments in.
const BASE: &str = r#"{"providers": [{"name": "relay", "type": "smtp", "host": "smtp.example.com", "from": "canary@example.com"}],
 "inboxes": [{"name": "ops-gmail", "address": "ops@example.com", "imap": {"host": "imap.example.com", "username": "u", "password": "p"}}],
 "probes": [{"name": "relay-to-ops-gmail", "provider": "relay", "inbox": "ops-gmail"}]}"#;

#[test]
fn every_yaml_config_in_the_docs_validates_or_is_a_fragment_of_accepted_keys() {
    let dir = std::env::temp_dir().join(format!("mailcanary-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert.pem()).unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in markdown_files() {
        for b in blocks(&path).into_iter().filter(|b| b.info.split_whitespace().next() == Some("yaml")) {
            let at = format!("{}:{}", b.file, b.line);
            let value: serde_json::Value = match serde_saphyr::from_str(&b.text) {
                Ok(v) => v,
                Err(e) => {
                    wrong.push(format!("{at}: not YAML: {e}"));
                    continue;
                }
            };
            let Some(top) = value.as_object().filter(|o| o.keys().all(|k| SECTIONS.contains(&k.as_str()))) else {
                continue; // Prometheus, Kubernetes, Compose: not a mailcanary config.
            };
            checked += 1;
            let env = env_for(&b.text, ca.to_str().unwrap());
            if b.info.split_whitespace().any(|w| w == "fragment") {
                let mut doc: serde_json::Value = serde_json::from_str(BASE).unwrap();
                for (k, v) in top {
                    match (doc.get_mut(k), v) {
                        (Some(serde_json::Value::Array(base)), serde_json::Value::Array(more)) => {
                            base.extend(more.clone())
                        }
                        _ => {
                            doc[k] = v.clone();
                        }
                    }
                }
                let text = doc.to_string();
                let problems = config::parse(&text, &env).err().unwrap_or_default();
                let refused = ["unknown field", "unknown variant", "unknown key"];
                for p in problems.iter().filter(|p| refused.iter().any(|r| p.message.starts_with(r))) {
                    wrong.push(format!("{at}: a fragment with a key or value the config refuses: {p}"));
                }
            } else if let Err(problems) = config::parse(&b.text, &env) {
                let list: Vec<String> = problems.iter().map(|p| format!("    {p}")).collect();
                wrong.push(format!(
                    "{at}: does not validate (mark it ```yaml fragment if it is one):\n{}",
                    list.join("\n")
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked >= 10, "too few configs found in the docs: {checked}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ------------------------------------------------------------------- commands

#[test]
fn every_mailcanary_command_shown_exists() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mailcanary")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let verbs: BTreeSet<String> = help
        .split_once("Commands:")
        .expect("a list of commands")
        .1
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(module))
        .collect();
    assert!(verbs.contains("run") && verbs.contains("report"), "{help}");
    // A command: at the start of a line or span (after a prompt or sudo), of
    // a path (`/usr/bin/mailcanary`), of `ExecStart=`, or after `&&`, `|`, `;`.
    let shown =
        regex::Regex::new(r"(?:^\s*(?:\$\s+|sudo\s+)?|[/=(]|&&\s*|\|\s*|;\s*)mailcanary ([a-z][a-z-]*)").unwrap();
    let mut wrong = Vec::new();
    for path in markdown_files() {
        let file = path.strip_prefix(repo()).unwrap().display().to_string();
        let doc = std::fs::read_to_string(&path).unwrap();
        let mut in_code = false;
        for (n, line) in doc.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            // In code: the whole line in a block, the `spans` elsewhere.
            let code: Vec<String> = if in_code { vec![line.to_string()] } else { ticked(line) };
            for c in code {
                for verb in shown.captures_iter(&c).map(|m| m[1].to_string()) {
                    if !verbs.contains(&verb) {
                        wrong.push(format!("{file}:{}: mailcanary {verb}: no such command ({c})", n + 1));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}\ncommands: {verbs:?}", wrong.join("\n"));
}

/// A module's name from its file or folder (`x.rs`, `x/`: `x`).
fn module(name: &str) -> String {
    name.trim_end_matches('/').trim_end_matches(".rs").to_string()
}

/// The README's layout block (under "## Development"): its lines.
fn layout() -> Vec<String> {
    let readme = read("README.md");
    let development = &readme[readme.find("## Development").expect("README has a Development section")..];
    let start = development.find("```\nsrc/\n").expect("the layout block starts with src/") + 4;
    let end = start + development[start..].find("```").expect("the layout block ends");
    development[start..end].lines().map(str::to_string).collect()
}

#[test]
fn the_readmes_layout_names_every_module_and_nothing_that_is_gone() {
    let lines = layout();
    let src = lines.iter().position(|l| l == "src/").expect("src/ is listed");
    // A module's entry: two spaces, then its name (`x.rs` or `x/`).
    let listed: BTreeSet<String> = lines[src + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(module))
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("src"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            module(&e.file_name().to_string_lossy())
        })
        .filter(|name| name != "lib")
        .collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&on_disk).collect();
    assert!(missing.is_empty() && gone.is_empty(), "README layout: not listed {missing:?}; listed but gone {gone:?}");
    // Files named inside a folder's description exist there.
    let mut folder = String::new();
    for line in &lines[src + 1..] {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.split_whitespace().next())
            && !line.starts_with("   ")
        {
            folder = if name.ends_with('/') { module(name) } else { String::new() };
        }
        if folder.is_empty() {
            continue;
        }
        for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '/')) {
            let word = word.trim_end_matches('.');
            if word.ends_with(".rs") && !word.contains('/') {
                let path = repo().join("src").join(&folder).join(word);
                assert!(path.exists(), "README layout: {folder}/{word} is not there");
            }
        }
    }
}
