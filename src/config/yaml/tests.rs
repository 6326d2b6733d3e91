//! Indexing, decoding one node at a time, and `${VAR}` in every place a value stands.

use super::*;

#[test]
fn indexes_paths_with_lines() {
    let text = "global:\n  listen: x\nproviders:\n  - name: a\n    type: smtp\n  - { name: b }\n";
    let doc = Document::parse(text, &HashMap::new(), &mut Vec::new()).unwrap();
    assert_eq!(doc.line("global.listen"), Some(2));
    assert_eq!(doc.line("providers[0].type"), Some(5));
    assert_eq!(doc.line("providers[1].name"), Some(6));
    assert_eq!(doc.line("providers[1].nothing"), Some(6));
    assert_eq!(doc.len("providers"), 2);
    assert_eq!(doc.top_keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["global", "providers"]);
}

#[test]
fn decodes_one_item_alone_with_file_lines() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        name: String,
    }
    let text = "providers:\n  - name: a\n  - name: b\n    hots: x\n";
    let doc = Document::parse(text, &HashMap::new(), &mut Vec::new()).unwrap();
    assert_eq!(doc.decode::<P>("providers[0]").unwrap().name, "a");
    let err = doc.decode::<P>("providers[1]").unwrap_err();
    assert_eq!(err.line, Some(4));
    assert_eq!(err.path, "providers[1].hots");
    assert!(err.message.contains("hots"), "{}", err.message);
}

#[test]
fn expands_variables_in_values_keeping_lines() {
    #[derive(serde::Deserialize, Debug)]
    struct V {
        a: String,
        b: String,
        c: u16,
        d: String,
    }
    let env: HashMap<String, String> =
        [("PW", "p\"w: #x\nz"), ("PORT", "25")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let text = "a: \"${PW}\"\nb: 'cost $$5 ${PW}'\nc: ${PORT}\nd: |\n  two\n  lines $$\nz: x\n";
    let mut problems = Vec::new();
    let doc = Document::parse(text, &env, &mut problems).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let v: V = doc.decode("").unwrap();
    assert_eq!(v.a, "p\"w: #x\nz");
    assert_eq!(v.b, "cost $5 p\"w: #x\nz");
    assert_eq!(v.c, 25);
    assert_eq!(v.d, "two\nlines $\n");
    assert_eq!(doc.line("z"), Some(7));
}

#[test]
fn a_variable_unquoted_inside_a_flow_mapping_takes_the_type_of_its_key() {
    #[derive(serde::Deserialize, Debug)]
    struct Imap {
        host: String,
        port: u16,
    }
    #[derive(serde::Deserialize, Debug)]
    struct V {
        imap: Imap,
        list: Vec<String>,
    }
    let env: HashMap<String, String> =
        [("PORT", "10993"), ("HOST", "imap.example.com")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let text = "imap: { host: ${HOST}, port: ${PORT} }\nlist: [${HOST}, \"${PORT}\"]\n";
    let mut problems = Vec::new();
    let doc = Document::parse(text, &env, &mut problems).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let v: V = doc.decode("").unwrap();
    assert_eq!((v.imap.host.as_str(), v.imap.port), ("imap.example.com", 10993));
    assert_eq!(v.list, ["imap.example.com", "10993"]);
    // Unset inside a flow mapping: named, with its line.
    let mut problems = Vec::new();
    Document::parse("a: 1\nimap: { port: ${NOPE} }\n", &env, &mut problems).unwrap();
    assert_eq!((problems[0].path.as_str(), problems[0].line), ("imap.port", Some(2)));
    assert_eq!(problems[0].message, "environment variable NOPE is not set");
}

#[test]
fn a_syntax_error_names_its_column() {
    let err = Document::parse("a: { b: 1 c: 2 }\n", &HashMap::new(), &mut Vec::new()).err().unwrap();
    assert!(err.message.starts_with("YAML syntax error at column "), "{}", err.message);
    assert_eq!(err.line, Some(1));
}

#[test]
fn an_unset_variable_is_named_and_its_neighbours_kept() {
    let mut problems = Vec::new();
    let env: HashMap<String, String> = [("SET".to_string(), "s3cret".to_string())].into();
    let doc = Document::parse("a: ${SET}\nb: \"${NOT_SET}\"\n", &env, &mut problems).unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "b");
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(problems[0].message, "environment variable NOT_SET is not set");
    assert_eq!(doc.scalar("a"), Some("s3cret"));
}
