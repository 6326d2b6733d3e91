//! The crate's layout, as DESIGN.md's "Layout" has it: no import circles
//! between top-level modules (a file or a folder under src/), so that each
//! layer can be read, tested and changed knowing only those below it; and
//! none between the files of a folder (but those in [`NOT_YET_CLEAN`]).
//!
//! The module tree is followed from src/lib.rs through its `mod`
//! declarations, leaving out what only tests compile (`#[cfg(test)]` items
//! and the files they declare, such as `src/x/tests.rs`). In each file, a
//! module is used by a path that names it: `crate::a::..`, the members of
//! `crate::{a, b::c}`, or `super::` up to it. Comments and string literals
//! are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders whose files may still import each other in a circle (through
/// `super::x` or `crate::folder::x`); every other folder is checked, a new
/// one too. None today: a folder with such a circle is listed here only
/// while the circle is being taken apart.
const NOT_YET_CLEAN: &[&str] = &[];

/// One compiled file: its module path (`["config", "yaml"]`) and its code
/// with comments, strings and test-only items blanked out.
struct File {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

/// Blanks comments, string and char literals (keeping line breaks, so
/// offsets still give lines).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, s: &[u8]| out.extend(s.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if let Some(hashes) = raw_string_start(rest) {
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            let open = hashes + 2 + usize::from(rest[0] == b'b');
            let body = &b[i + open..];
            i + open
                + body.windows(close.len()).position(|w| w == close.as_slice()).map_or(body.len(), |p| p + close.len())
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if rest[0] == b'\'' && char_literal(&text[i..]) {
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else {
            out.push(b[i]);
            i += 1;
            continue;
        };
        let end = end.min(b.len());
        blank(&mut out, &b[i..end]);
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a `'` starts a char literal (`'x'`, `'\n'`, `'é'`), not a
/// lifetime (`'a`), which has no closing quote after one char.
fn char_literal(s: &str) -> bool {
    let mut chars = s.chars().skip(1);
    match chars.next() {
        Some('\\') => true,
        Some(_) => chars.next() == Some('\''),
        None => false,
    }
}

/// `r"`, `r#"`, `br##"`: the number of hashes of a raw string starting here.
fn raw_string_start(s: &[u8]) -> Option<usize> {
    let s = s.strip_prefix(b"b").unwrap_or(s);
    let s = s.strip_prefix(b"r")?;
    let hashes = s.iter().take_while(|&&c| c == b'#').count();
    (s.get(hashes) == Some(&b'"')).then_some(hashes)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Blanks each item marked `#[cfg(test)]`: up to its `;`, or its braces.
fn strip_tests(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(at) = code[from..].find(MARK).map(|p| p + from) {
        let b = code.as_bytes();
        let mut depth = 0usize;
        let mut j = at + MARK.len();
        // Further attributes of the same item.
        while j < b.len() {
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if b[j..].starts_with(b"#[") {
                j += b[j..].iter().position(|&c| c == b']').map_or(b.len() - j, |p| p + 1);
            } else {
                break;
            }
        }
        while j < b.len() {
            match b[j] {
                b'{' | b'(' | b'[' => depth += 1,
                b'}' | b')' | b']' if depth == 0 => break,
                b'}' | b')' | b']' => {
                    depth -= 1;
                    if depth == 0 && b[j] == b'}' {
                        j += 1;
                        break;
                    }
                }
                b';' | b',' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for c in &mut out[at..j] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = j;
    }
    String::from_utf8(out).expect("only ASCII was blanked")
}

/// The `mod name;` declarations of a file (inline `mod x { }` stays in it).
fn declared_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        if at > 0 && is_ident(code.as_bytes()[at - 1]) {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest.trim_start().chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
        let after = rest.trim_start()[name.len()..].trim_start();
        if !name.is_empty() && after.starts_with(';') {
            found.push(name);
        }
    }
    found
}

/// Every file the library compiles, outside tests.
fn files() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut todo = vec![(src.join("lib.rs"), Vec::<String>::new())];
    while let Some((path, module)) = todo.pop() {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let code = strip_tests(&strip(&text));
        // Children of `a.rs` and of `a/mod.rs` (and of lib.rs) live in `a/` (src/).
        let dir = match path.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs" | "mod.rs") => path.parent().unwrap().to_path_buf(),
            _ => path.with_extension(""),
        };
        for name in declared_modules(&code) {
            let file = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")]
                .into_iter()
                .find(|f| f.is_file())
                .unwrap_or_else(|| panic!("{}: mod {name} has no file", path.display()));
            let mut child = module.clone();
            child.push(name);
            todo.push((file, child));
        }
        files.push(File { path, module, code });
    }
    files
}

/// The module paths a file's code names, each with its line: `crate::a::b`
/// as `["a", "b"]`, `super::x` resolved from the file's `module` (a
/// folder's mod.rs is the folder's module, so the same rule holds).
fn uses(code: &str, module: &[String]) -> Vec<(Vec<String>, usize)> {
    let b = code.as_bytes();
    let line = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b':');
        let (base, len) = if starts_word && b[i..].starts_with(b"crate::") {
            (Some(Vec::new()), "crate::".len())
        } else if starts_word && b[i..].starts_with(b"super::") {
            let mut base = module.to_vec();
            let mut j = i;
            while b[j..].starts_with(b"super::") {
                base.pop();
                j += "super::".len();
            }
            (Some(base), j - i)
        } else {
            (None, 1)
        };
        if let Some(base) = base {
            for path in paths(&code[i + len..]) {
                let mut full = base.clone();
                full.extend(path);
                found.push((full, line(i)));
            }
        }
        i += len;
    }
    found
}

/// The paths at the start of `s`: `a::b::C` gives `a::b::C`, a group
/// `{a, b::{c, d}}` each of its members (to their first brace).
fn paths(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut members = Vec::new();
        let mut start = 0;
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    members.push(&group[start..k]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(&group[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        return members.into_iter().flat_map(paths).collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let name: String = rest.chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
        if name.is_empty() {
            break;
        }
        rest = rest[name.len()..].trim_start();
        path.push(name);
        match rest.strip_prefix("::") {
            Some(r) if r.trim_start().starts_with('{') => {
                return paths(r).into_iter().map(|p| path.iter().cloned().chain(p).collect()).collect();
            }
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    if path.is_empty() { Vec::new() } else { vec![path] }
}

/// Which module uses which, with a place that does it (`file:line`), for
/// the modules `node` names: a file's node and the node it uses, or None.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn graph(files: &[File], node: impl Fn(&[String]) -> Option<String>) -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut g = Graph::new();
    for f in files {
        let Some(from) = node(&f.module) else { continue };
        for (path, line) in uses(&f.code, &f.module) {
            let Some(to) = node(&path) else { continue };
            if to != from {
                let place = format!("{}:{line}", f.path.strip_prefix(src).unwrap_or(&f.path).display());
                g.entry(from.clone()).or_default().entry(to).or_insert(place);
            }
        }
    }
    g
}

/// One circle through each group of modules that reach each other, as
/// `a -> b -> a`, each step with where it is made.
fn circles(g: &Graph) -> Vec<String> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in g.get(&n).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for start in g.keys() {
        if done.contains(start) || !reach(start).contains(start) {
            continue;
        }
        // The shortest way back to `start` (breadth first).
        let mut back: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        'search: while let Some(n) = queue.pop_front() {
            for m in g.get(&n).into_iter().flat_map(|e| e.keys()) {
                if m == start {
                    back.insert(format!("{start}\0end"), n.clone());
                    break 'search;
                }
                if !back.contains_key(m) {
                    back.insert(m.clone(), n.clone());
                    queue.push_back(m.clone());
                }
            }
        }
        let mut ring = vec![back[&format!("{start}\0end")].clone()];
        while ring.last() != Some(start) {
            ring.push(back[ring.last().unwrap()].clone());
        }
        ring.reverse();
        ring.push(start.clone());
        let steps: Vec<String> =
            ring.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]])).collect();
        // Each group of modules that reach each other is named once, with
        // one circle through it.
        let group: BTreeSet<String> = reach(start).into_iter().filter(|m| reach(m).contains(start)).collect();
        let mut text = format!("{}\n    {}", ring.join(" -> "), steps.join("\n    "));
        if group.len() > ring.len() - 1 {
            text.push_str(&format!(
                "\n    (all of these reach each other: {})",
                Vec::from_iter(group.clone()).join(", ")
            ));
        }
        found.push(text);
        done.extend(group);
    }
    found
}

#[test]
fn no_import_circles_between_top_level_modules() {
    let files = files();
    let top: BTreeSet<String> = files.iter().filter(|f| f.module.len() == 1).map(|f| f.module[0].clone()).collect();
    let g = graph(&files, |path| path.first().filter(|m| top.contains(*m)).cloned());
    let found = circles(&g);
    assert!(found.is_empty(), "import circles between top-level modules:\n  {}", found.join("\n  "));
}

#[test]
fn no_import_circles_inside_folders() {
    let files = files();
    let folders: BTreeSet<String> = files.iter().filter(|f| f.module.len() >= 2).map(|f| f.module[0].clone()).collect();
    for folder in NOT_YET_CLEAN {
        assert!(folders.contains(*folder), "NOT_YET_CLEAN names {folder}, which is no folder of modules");
    }
    let mut found = Vec::new();
    for folder in folders.iter().filter(|f| !NOT_YET_CLEAN.contains(&f.as_str())) {
        let members: BTreeSet<String> = files
            .iter()
            .filter(|f| f.module.len() >= 2 && &f.module[0] == folder)
            .map(|f| f.module[1].clone())
            .collect();
        let g = graph(&files, |path| match path {
            [f, m, ..] if f == folder && members.contains(m) => Some(format!("{f}::{m}")),
            _ => None,
        });
        found.extend(circles(&g));
    }
    assert!(found.is_empty(), "import circles inside folders:\n  {}", found.join("\n  "));
}

#[test]
fn the_reader_finds_paths_in_groups_and_skips_comments_strings_and_tests() {
    let text = r##"
        use crate::{a, b::{c, d}, e::F};
        use crate::g::H; // crate::commented
        /* crate::blocked /* nested */ crate::too */
        const S: &str = "crate::quoted";
        const R: &str = r#"crate::raw "# ;
        fn f<'x>(c: char) -> bool { c == '"' && crate::i::j(c) }
        #[cfg(test)]
        mod tests { use crate::tested; }
        #[cfg(test)]
        use crate::also_tested;
        mod child;
        mod inline { }
    "##;
    let code = strip_tests(&strip(text));
    let names: Vec<String> = uses(&code, &[]).into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(names, ["a", "b::c", "b::d", "e::F", "g::H", "i::j"]);
    assert_eq!(declared_modules(&code), ["child"]);
    let names: Vec<String> =
        uses("use super::{x, y::z};", &["m".into(), "n".into()]).into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(names, ["m::x", "m::y::z"]);
}

#[test]
fn a_circle_is_named_with_the_places_that_make_it() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into(), "src/a.rs:3".into());
    g.entry("b".into()).or_default().insert("c".into(), "src/b.rs:5".into());
    g.entry("c".into()).or_default().insert("a".into(), "src/c.rs:7".into());
    g.entry("c".into()).or_default().insert("d".into(), "src/c.rs:8".into());
    let found = circles(&g);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("a -> b -> c -> a"), "{}", found[0]);
    assert!(found[0].contains("c -> a (src/c.rs:7)"), "{}", found[0]);
}
