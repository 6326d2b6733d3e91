//! `${VAR}` in config values: expansion from the environment (`$$` is a
//! literal `$`), the expanded value written back as YAML, and variables
//! standing unquoted inside flow collections (`{ port: ${PORT} }`), where
//! YAML would otherwise read their braces as a mapping.

use std::collections::HashMap;

/// Expands `${VAR}` from `env`; `$$` is a literal `$`, any other `$` stays.
pub fn expand(value: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(close) = after.find('}') else {
                return Err("unclosed ${ (write $$ for a literal $)".into());
            };
            let name = &after[..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in ${{...}}"));
            }
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` as a one-line YAML scalar: plain when it was plain and is safe so
/// (numbers stay numbers), otherwise double-quoted with escapes.
pub fn yaml_scalar(value: &str, plain: bool) -> String {
    let safe = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "._/+-@".contains(c));
    if plain && safe {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A text with every `${NAME}` written `$(NAME)`: the same length, so
/// every position and line is the original's, and parseable in a flow
/// collection.
pub struct FlowVariables {
    pub text: String,
    /// Where each rewritten variable starts, and its name.
    rewritten: Vec<(usize, String)>,
}

impl FlowVariables {
    /// `text` rewritten, if it holds any `${NAME}`.
    pub fn hide(text: &str) -> Option<FlowVariables> {
        let mut out = String::with_capacity(text.len());
        let mut rewritten = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                rewritten.push((out.len(), after[..name_len].to_string()));
                out.push_str(&format!("$({})", &after[..name_len]));
                rest = &after[name_len + 1..];
            } else {
                out.push_str("${");
                rest = after;
            }
        }
        out.push_str(rest);
        (!rewritten.is_empty()).then_some(FlowVariables { text: out, rewritten })
    }

    /// `value`, a scalar that spans `start..end` of the text, with the
    /// variables rewritten in that span written `${NAME}` again.
    pub fn restore(&self, value: &str, start: usize, end: usize) -> String {
        let mut value = value.to_string();
        for (_, name) in self.rewritten.iter().filter(|(at, _)| (start..end).contains(at)) {
            value = value.replace(&format!("$({name})"), &format!("${{{name}}}"));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_hidden_in_place_and_restored_in_their_scalar_only() {
        let text = "a: { port: ${PORT}, x: $${LIT}, y: ${bad name} }";
        let flow = FlowVariables::hide(text).unwrap();
        assert_eq!(flow.text, "a: { port: $(PORT), x: $$(LIT), y: ${bad name} }");
        assert_eq!(flow.text.len(), text.len());
        let at = text.find("${PORT}").unwrap();
        assert_eq!(flow.restore("$(PORT)", at, at + 7), "${PORT}");
        assert_eq!(flow.restore("$(PORT)", 0, 3), "$(PORT)", "not rewritten there");
        assert!(FlowVariables::hide("a: $$5 and $HOME").is_none());
    }
}
