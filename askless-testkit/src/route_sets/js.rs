//! JavaScript value semantics the example servers rely on, so the route sets answer exactly
//! what the Node.js servers answer for odd inputs.

use serde_json::{Number, Value};

/// Converts a JSON value the way JavaScript's `Number(value)` does; `None` stands for
/// `undefined`.
pub(crate) fn to_number(value: Option<&Value>) -> f64 {
    match value {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(flag)) => f64::from(u8::from(*flag)),
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(text)) => string_to_number(text),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => 0.0,
            [single] => match single {
                Value::Array(_) | Value::Object(_) => f64::NAN,
                Value::Null => 0.0,
                Value::String(text) => string_to_number(text),
                other => to_number(Some(other)),
            },
            _ => f64::NAN,
        },
        Some(Value::Object(_)) => f64::NAN,
    }
}

fn string_to_number(text: &str) -> f64 {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return 0.0;
    }
    // Rust accepts "inf" and "nan", JavaScript only "Infinity".
    match trimmed {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if trimmed
        .chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return f64::NAN;
    }
    trimmed.parse::<f64>().unwrap_or(f64::NAN)
}

/// Returns the integer id in `object.id` the way the reference application reads it
/// (`Number(object.id)` when it is an integer), or `None` for JavaScript's `undefined`.
pub(crate) fn integer_id(object: &Value) -> Option<i64> {
    let object = object.as_object()?;
    let number = to_number(object.get("id"));
    if number.is_finite() && number.fract() == 0.0 && number.abs() < 9_007_199_254_740_992.0 {
        // The bound above keeps the value exact, so the conversion cannot truncate.
        Some(number as i64)
    } else {
        None
    }
}

/// Renders an optional integer as JavaScript's template literals do (`undefined` for `None`).
pub(crate) fn render_id(id: Option<i64>) -> String {
    id.map_or_else(|| "undefined".to_owned(), |id| id.to_string())
}

/// Builds a JSON number the way `JSON.stringify` writes it: integral values without a fraction.
pub(crate) fn number_value(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9_007_199_254_740_992.0 {
        Value::from(number as i64)
    } else {
        Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}

/// Returns JavaScript's truthiness of an optional JSON value (`None` is `undefined`).
pub(crate) fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number
            .as_f64()
            .is_some_and(|float| float != 0.0 && !float.is_nan()),
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn number_conversion_follows_javascript() {
        assert_eq!(to_number(Some(&json!(null))), 0.0);
        assert_eq!(to_number(Some(&json!("12"))), 12.0);
        assert_eq!(to_number(Some(&json!(" 7 "))), 7.0);
        assert_eq!(to_number(Some(&json!(""))), 0.0);
        assert_eq!(to_number(Some(&json!(true))), 1.0);
        assert_eq!(to_number(Some(&json!([5]))), 5.0);
        assert!(to_number(None).is_nan());
        assert!(to_number(Some(&json!("abc"))).is_nan());
        assert!(to_number(Some(&json!({}))).is_nan());
        assert!(to_number(Some(&json!("inf"))).is_nan());
    }

    #[test]
    fn integer_id_reads_like_the_reference_app() {
        assert_eq!(integer_id(&json!({"id": 4})), Some(4));
        assert_eq!(integer_id(&json!({"id": "4"})), Some(4));
        assert_eq!(integer_id(&json!({"id": null})), Some(0));
        assert_eq!(integer_id(&json!({"id": 1.5})), None);
        assert_eq!(integer_id(&json!({})), None);
        assert_eq!(integer_id(&json!(null)), None);
    }

    #[test]
    fn numbers_render_like_json_stringify() {
        assert_eq!(number_value(1000.0), json!(1000));
        assert_eq!(number_value(2.5), json!(2.5));
        assert_eq!(render_id(None), "undefined");
    }
}
