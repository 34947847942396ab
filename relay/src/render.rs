//! `{{NAME}}` substitution. A name without a value is an error, never an empty string.

use std::collections::BTreeMap;

/// Values by placeholder name.
pub type Values = BTreeMap<&'static str, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("line {line}: no value for {{{{{name}}}}}")]
    Unknown { line: usize, name: String },
    #[error("line {line}: unclosed {{{{")]
    Unclosed { line: usize },
}

/// `template` with every `{{NAME}}` replaced by its value.
pub fn render(template: &str, values: &Values) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let line = template[..template.len() - rest.len() + start]
            .matches('\n')
            .count()
            + 1;
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RenderError::Unclosed { line })?;
        let name = &after[..end];
        let value = values.get(name).ok_or_else(|| RenderError::Unknown {
            line,
            name: name.to_string(),
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_refuses_unknown_names() {
        let mut v = Values::new();
        v.insert("A", "x{{B}}".into());
        assert_eq!(render("1 {{A}} 2 {{A}}", &v).unwrap(), "1 x{{B}} 2 x{{B}}");
        assert_eq!(render("no placeholders", &v).unwrap(), "no placeholders");
        assert_eq!(
            render("a\nb {{C}}", &v),
            Err(RenderError::Unknown {
                line: 2,
                name: "C".into()
            })
        );
        assert_eq!(render("{{A", &v), Err(RenderError::Unclosed { line: 1 }));
    }
}
