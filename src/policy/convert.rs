//! Any `Serialize` value straight into regorus's value form, without a JSON tree in between.
//!
//! The policy input of a large workspace holds tens of thousands of bindings and issues. Going
//! through `serde_json::Value` first (or through JSON text) builds every node twice and allocates
//! every string twice; this serializer builds the regorus tree in one pass and shares repeated
//! strings (object keys, role names, members, condition texts) through one reference-counted
//! copy each, which regorus's own values allow. The result equals what regorus reads from the
//! JSON that `serde_json` writes for the same value (a test holds the two together), so the
//! policies see the same document under OPA (which gets the JSON) and under regorus.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;

use regorus::Value;
use serde::Serialize;
use serde::ser;

/// A value that has no JSON form (a map key that is not a string or a number, …).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(String);

impl ser::Error for ConvertError {
    fn custom<T: Display>(message: T) -> Self {
        ConvertError(message.to_string())
    }
}

/// Converts `value` as `serde_json::to_value` would, but into regorus's form.
pub fn to_regorus<T: Serialize + ?Sized>(value: &T) -> Result<Value, ConvertError> {
    let mut strings = Strings::default();
    value.serialize(Converter { strings: &mut strings })
}

/// One shared copy of every distinct string seen so far: a string costs one allocation the
/// first time and a reference count after that.
#[derive(Default)]
struct Strings {
    seen: HashSet<regorus::Rc<str>, foldhash::fast::RandomState>,
}

impl Strings {
    fn get(&mut self, text: &str) -> Value {
        if let Some(shared) = self.seen.get(text) {
            return Value::String(shared.clone());
        }
        let shared: regorus::Rc<str> = text.into();
        self.seen.insert(shared.clone());
        Value::String(shared)
    }
}

/// The serializer: stateless but for the shared strings.
struct Converter<'a> {
    strings: &'a mut Strings,
}

impl<'a> Converter<'a> {
    fn again(&mut self) -> Converter<'_> {
        Converter { strings: self.strings }
    }
}

/// A list being built (sequences, tuples).
struct List<'a> {
    strings: &'a mut Strings,
    items: Vec<Value>,
    /// For a tuple variant: `{variant: [items]}`.
    variant: Option<&'static str>,
}

/// An object being built (maps, structs).
struct Object<'a> {
    strings: &'a mut Strings,
    fields: BTreeMap<Value, Value>,
    pending_key: Option<Value>,
    /// For a struct variant: `{variant: {fields}}`.
    variant: Option<&'static str>,
}

fn wrap(strings: &mut Strings, variant: Option<&'static str>, value: Value) -> Value {
    match variant {
        Some(name) => Value::from(BTreeMap::from([(strings.get(name), value)])),
        None => value,
    }
}

/// An integer of any width as a regorus number.
macro_rules! numbers {
    ($($method:ident: $type:ty as $wide:ty),*) => {
        $(
            fn $method(self, v: $type) -> Result<Value, ConvertError> {
                Ok(Value::from(<$wide>::from(v)))
            }
        )*
    };
}

impl<'a> ser::Serializer for Converter<'a> {
    type Ok = Value;
    type Error = ConvertError;
    type SerializeSeq = List<'a>;
    type SerializeTuple = List<'a>;
    type SerializeTupleStruct = List<'a>;
    type SerializeTupleVariant = List<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<Value, ConvertError> {
        Ok(Value::from(v))
    }

    // Integers widen to the 64-bit (or 128-bit) forms regorus reads from JSON.
    numbers!(
        serialize_i8: i8 as i64,
        serialize_i16: i16 as i64,
        serialize_i32: i32 as i64,
        serialize_i64: i64 as i64,
        serialize_i128: i128 as i128,
        serialize_u8: u8 as u64,
        serialize_u16: u16 as u64,
        serialize_u32: u32 as u64,
        serialize_u64: u64 as u64,
        serialize_u128: u128 as u128
    );

    fn serialize_f32(self, v: f32) -> Result<Value, ConvertError> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ConvertError> {
        // JSON has no NaN or infinity: serde_json writes them as null, and so does this.
        Ok(if v.is_finite() { Value::from(v) } else { Value::Null })
    }

    fn serialize_char(self, v: char) -> Result<Value, ConvertError> {
        Ok(self.strings.get(v.encode_utf8(&mut [0; 4])))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ConvertError> {
        Ok(self.strings.get(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ConvertError> {
        Ok(Value::from(v.iter().map(|b| Value::from(u64::from(*b))).collect::<Vec<_>>()))
    }

    fn serialize_none(self) -> Result<Value, ConvertError> {
        Ok(Value::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ConvertError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ConvertError> {
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ConvertError> {
        Ok(Value::Null)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ConvertError> {
        Ok(self.strings.get(variant))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ConvertError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ConvertError> {
        let inner = value.serialize(self.again())?;
        Ok(wrap(self.strings, Some(variant), inner))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<List<'a>, ConvertError> {
        let items = Vec::with_capacity(len.unwrap_or(0));
        Ok(List { strings: self.strings, items, variant: None })
    }

    fn serialize_tuple(self, len: usize) -> Result<List<'a>, ConvertError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<List<'a>, ConvertError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<List<'a>, ConvertError> {
        let items = Vec::with_capacity(len);
        Ok(List { strings: self.strings, items, variant: Some(variant) })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, ConvertError> {
        let fields = BTreeMap::new();
        Ok(Object { strings: self.strings, fields, pending_key: None, variant: None })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Object<'a>, ConvertError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'a>, ConvertError> {
        let fields = BTreeMap::new();
        Ok(Object { strings: self.strings, fields, pending_key: None, variant: Some(variant) })
    }
}

impl List<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        let item = value.serialize(Converter { strings: self.strings })?;
        self.items.push(item);
        Ok(())
    }

    fn finish(self) -> Value {
        wrap(self.strings, self.variant, Value::from(self.items))
    }
}

/// The four list-shaped traits differ only in their names: each adds an item and ends the list.
macro_rules! list_trait {
    ($trait:ident, $add:ident) => {
        impl ser::$trait for List<'_> {
            type Ok = Value;
            type Error = ConvertError;

            fn $add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
                self.push(value)
            }

            fn end(self) -> Result<Value, ConvertError> {
                Ok(self.finish())
            }
        }
    };
}

list_trait!(SerializeSeq, serialize_element);
list_trait!(SerializeTuple, serialize_element);
list_trait!(SerializeTupleStruct, serialize_field);
list_trait!(SerializeTupleVariant, serialize_field);

impl Object<'_> {
    fn insert<T: Serialize + ?Sized>(&mut self, key: Value, value: &T) -> Result<(), ConvertError> {
        let value = value.serialize(Converter { strings: self.strings })?;
        self.fields.insert(key, value);
        Ok(())
    }

    fn finish(self) -> Value {
        wrap(self.strings, self.variant, Value::from(self.fields))
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = Value;
    type Error = ConvertError;

    /// JSON writes keys as strings: text stays text, a number or a boolean becomes its JSON
    /// text (as serde_json does), anything else has no JSON form.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ConvertError> {
        let key = key.serialize(Converter { strings: self.strings })?;
        self.pending_key = Some(match key {
            Value::String(_) => key,
            Value::Number(_) | Value::Bool(_) => self.strings.get(&key.to_string()),
            other => {
                let problem = format!("a map key must be a string or a number, not {other}");
                return Err(ConvertError(problem));
            }
        });
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| ConvertError("a map value came without its key".to_owned()))?;
        self.insert(key, value)
    }

    fn end(self) -> Result<Value, ConvertError> {
        Ok(self.finish())
    }
}

/// Structs and struct variants add named fields the same way.
macro_rules! struct_trait {
    ($trait:ident) => {
        impl ser::$trait for Object<'_> {
            type Ok = Value;
            type Error = ConvertError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), ConvertError> {
                let key = self.strings.get(key);
                self.insert(key, value)
            }

            fn end(self) -> Result<Value, ConvertError> {
                Ok(self.finish())
            }
        }
    };
}

struct_trait!(SerializeStruct);
struct_trait!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;

    /// What regorus reads from the JSON serde_json writes for `value`.
    fn through_json<T: Serialize>(value: &T) -> Value {
        let json = serde_json::to_value(value).unwrap();
        Value::deserialize(&json).unwrap()
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        name: String,
        count: u32,
        ratio: f64,
        missing: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        tags: BTreeMap<String, i64>,
        numbered: BTreeMap<u32, bool>,
        kind: Kind,
        shapes: Vec<Shape>,
        pair: (bool, char),
        when: chrono::DateTime<chrono::Utc>,
        unit: (),
    }

    #[derive(Serialize)]
    enum Kind {
        BuiltIn,
    }

    #[derive(Serialize)]
    enum Shape {
        Circle(f32),
        Square { side: u8 },
        Line(i8, i8),
    }

    #[test]
    fn equals_regorus_reading_serde_json_output() {
        let sample = Sample {
            name: "projects/pay".into(),
            count: 7,
            ratio: 0.25,
            missing: None,
            skipped: None,
            tags: BTreeMap::from([("a".into(), -3), ("b".into(), i64::MAX)]),
            numbered: BTreeMap::from([(1, true), (20, false)]),
            kind: Kind::BuiltIn,
            shapes: vec![Shape::Circle(1.5), Shape::Square { side: 2 }, Shape::Line(-1, 1)],
            pair: (true, 'x'),
            when: chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().to_utc(),
            unit: (),
        };
        assert_eq!(to_regorus(&sample).unwrap(), through_json(&sample));
        assert_eq!(to_regorus(&f64::NAN).unwrap(), through_json(&f64::NAN));
        let json = serde_json::json!({"x": [1, -2, 3.5, "s", null, {"y": true}], "": {}});
        assert_eq!(to_regorus(&json).unwrap(), through_json(&json));
    }

    #[test]
    fn repeated_strings_are_shared() {
        let members = vec!["user:a@x.example"; 3];
        let value = to_regorus(&members).unwrap();
        let Value::Array(items) = &value else { panic!("{value:?}") };
        let (Value::String(first), Value::String(second)) = (&items[0], &items[2]) else {
            panic!("{value:?}")
        };
        assert!(regorus::Rc::ptr_eq(first, second));
    }

    #[test]
    fn a_key_without_a_json_form_is_an_error() {
        let map = BTreeMap::from([(vec![1], 1)]);
        assert!(to_regorus(&map).is_err());
        let map = BTreeMap::from([(None::<u8>, 1)]);
        assert!(to_regorus(&map).is_err());
        let keys = BTreeMap::from([(true, 1), (false, 2)]);
        assert_eq!(to_regorus(&keys).unwrap(), through_json(&keys));
    }
}
