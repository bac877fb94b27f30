//! The canonical JSON form that record hashes and checkpoint signatures are computed over.
//!
//! It is RFC 8785 (JSON Canonicalization Scheme) restricted to integers: object members sorted by
//! the UTF-16 code units of their names, no insignificant whitespace, strings escaped minimally
//! (`"`, `\`, and control characters, with `\b \t \n \f \r` short forms and lowercase `\u00xx`
//! otherwise), integers in plain decimal. Floating-point numbers and integers beyond ±(2^53−1) are
//! refused so that any JCS implementation in any language reproduces the same bytes.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::Serialize;
use serde_json::Value;

use crate::error::AuditError;

/// Largest integer JCS represents exactly (2^53 − 1).
const MAX_SAFE: u64 = (1 << 53) - 1;

/// The canonical bytes of `v`.
pub fn to_canonical(v: &Value) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::with_capacity(512);
    write(v, &mut out)?;
    Ok(out)
}

/// Appends the canonical form of `v` to `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), AuditError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let ok = n.as_u64().is_some_and(|u| u <= MAX_SAFE) || n.as_i64().is_some_and(|i| i.unsigned_abs() <= MAX_SAFE);
            if !ok {
                return Err(AuditError::Serialize(format!(
                    "number `{n}` is not an integer within ±(2^53-1); audit records carry integers only"
                )));
            }
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => decimal(out, i.into()),
                (None, Some(u)) => decimal(out, u.into()),
                (None, None) => out.extend_from_slice(n.to_string().as_bytes()),
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| cmp_keys(a.0, b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Member order of JCS: by UTF-16 code units. Decided from the UTF-8 bytes where they agree with
/// it — a common prefix of whole characters, then a first differing byte that is ASCII on at least
/// one side (an ASCII unit sorts below every other character's first unit in both encodings) —
/// and by transcoding only otherwise: every record is sorted on the request path and again by the
/// writer, and its names are ASCII.
pub fn cmp_keys(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).find(|(p, q)| p != q) {
        // One is a prefix of the other, in whole characters since both are UTF-8.
        None => x.len().cmp(&y.len()),
        Some((p, q)) if p.is_ascii() || q.is_ascii() => p.cmp(q),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// Joins already-canonical member values into a canonical object; `members` need not be sorted.
pub fn object(members: &mut [(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(members.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    write_object(members, &mut out);
    out
}

/// Appends [`object`]'s bytes to `out`.
pub fn write_object(members: &mut [(&str, &[u8])], out: &mut Vec<u8>) {
    write_object_noting(members, out, "");
}

/// [`write_object`], also saying where in `out` a member called `name` (not among `members`)
/// would begin: just after the `{` or the `,` that ends the member before it, or at the closing
/// `}` when it would come last. The audit writer seals a record with one object build this way:
/// the stored line is the hashed object with its `hash` member spliced in there.
pub fn write_object_noting(members: &mut [(&str, &[u8])], out: &mut Vec<u8>, name: &str) -> usize {
    members.sort_by(|a, b| cmp_keys(a.0, b.0));
    out.push(b'{');
    let mut at = None;
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if at.is_none() && cmp_keys(k, name) == Ordering::Greater {
            at = Some(out.len());
        }
        write_str(k, out);
        out.push(b':');
        out.extend_from_slice(v);
    }
    let end = out.len();
    out.push(b'}');
    at.unwrap_or(end)
}

/// One member of a canonical object: its name (borrowed when it is a struct's field name, as most
/// are; owned for map keys) and its value's canonical bytes.
pub type Member = (Cow<'static, str>, Vec<u8>);

/// The canonical members of a value that serialises as a JSON object, straight from its
/// `Serialize` impl: `(member name, canonical value bytes)` sorted by name.
/// The same bytes as [`to_canonical`] over `serde_json::to_value`, without building the tree: an
/// audit record is canonicalised this way on every request, and the tree of strings it copied
/// was most of that cost.
pub fn members<T: Serialize + ?Sized>(v: &T) -> Result<Vec<Member>, AuditError> {
    let mut members = Vec::new();
    v.serialize(Top(&mut members))?;
    Ok(members)
}

impl serde::ser::Error for AuditError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        AuditError::Serialize(msg.to_string())
    }
}

fn refuse<T>(what: &str) -> Result<T, AuditError> {
    Err(AuditError::Serialize(format!("{what} cannot be canonicalised; audit records carry integers, strings, lists and objects only")))
}

fn int(out: &mut Vec<u8>, n: i128) -> Result<(), AuditError> {
    if n.unsigned_abs() > u128::from(MAX_SAFE) {
        return Err(AuditError::Serialize(format!(
            "number `{n}` is not an integer within ±(2^53-1); audit records carry integers only"
        )));
    }
    decimal(out, n);
    Ok(())
}

/// Appends `n` in plain decimal, through a stack buffer rather than a `String` per integer: a
/// record carries a dozen of them (counts, status, sizes, latency), canonicalised per request.
fn decimal(out: &mut Vec<u8>, n: i128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        // `m % 10` is a digit, so the cast is exact.
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes one value's canonical form to the buffer it holds.
struct Canon<'a>(&'a mut Vec<u8>);

/// An object's members while it is serialised. At the top level they are collected, sorted, as
/// the result; inside, each member is written straight to the output as it comes, and the members
/// are put in order when the object ends only if they did not come in order. Struct fields mostly
/// come in order, so a nested object costs no buffer per member (the record's mask list and
/// principal were one allocation per field, on every request).
struct Members<'a> {
    /// `None` at the top level, where the members themselves are the result.
    out: Option<&'a mut Vec<u8>>,
    top: Option<&'a mut Vec<Member>>,
    members: Vec<Member>,
    /// Inside: each member's name and where its `"name":value` is in `out`, in the order written.
    spans: Vec<(Cow<'static, str>, usize, usize)>,
    /// Inside: where the first member is (or would be) written, just after the `{`.
    body: usize,
    key: Option<String>,
    /// For `{"variant": {...}}`: the variant name the object is wrapped in.
    variant: Option<&'static str>,
}

impl<'a> Members<'a> {
    /// An object inside a value: its opening (and its variant's wrapper) is written at once.
    fn nested(out: &'a mut Vec<u8>, len: usize, variant: Option<&'static str>) -> Members<'a> {
        if let Some(v) = variant {
            out.push(b'{');
            write_str(v, out);
            out.push(b':');
        }
        out.push(b'{');
        let body = out.len();
        Members { out: Some(out), top: None, members: Vec::new(), spans: Vec::with_capacity(len), body, key: None, variant }
    }

    fn member(&mut self, key: Cow<'static, str>, value: &(impl Serialize + ?Sized)) -> Result<(), AuditError> {
        if let Some(out) = self.out.as_deref_mut() {
            if !self.spans.is_empty() {
                out.push(b',');
            }
            let start = out.len();
            write_str(&key, out);
            out.push(b':');
            value.serialize(Canon(out))?;
            self.spans.push((key, start, out.len()));
            return Ok(());
        }
        let mut bytes = Vec::new();
        value.serialize(Canon(&mut bytes))?;
        self.members.push((key, bytes));
        Ok(())
    }

    fn end(mut self) -> Result<(), AuditError> {
        if let Some(out) = self.out.take() {
            let in_order = self.spans.windows(2).all(|w| cmp_keys(&w[0].0, &w[1].0) == Ordering::Less);
            if !in_order {
                // Stable, so equal names stay adjacent and are found below.
                self.spans.sort_by(|a, b| cmp_keys(&a.0, &b.0));
                if self.spans.windows(2).any(|w| w[0].0 == w[1].0) {
                    return refuse("an object with a repeated member name");
                }
                let written = out.split_off(self.body);
                for (i, (_, start, end)) in self.spans.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&written[start - self.body..end - self.body]);
                }
            }
            out.push(b'}');
            if self.variant.is_some() {
                out.push(b'}');
            }
            return Ok(());
        }
        self.members.sort_by(|a, b| cmp_keys(&a.0, &b.0));
        // `to_value` would keep one of two equal names silently; a record never has them.
        if self.members.windows(2).any(|w| w[0].0 == w[1].0) {
            return refuse("an object with a repeated member name");
        }
        if let Some(top) = self.top.take() {
            *top = std::mem::take(&mut self.members);
        }
        Ok(())
    }
}

/// A list while it is serialised (optionally wrapped in `{"variant": [...]}`).
struct Items<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: bool,
}

impl Items<'_> {
    fn item(&mut self, v: &(impl Serialize + ?Sized)) -> Result<(), AuditError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        v.serialize(Canon(self.out))
    }

    fn end(self) -> Result<(), AuditError> {
        self.out.push(b']');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// Only an object may be the top level of [`members`].
struct Top<'a>(&'a mut Vec<Member>);

/// Map keys: strings only (what `serde_json::to_value` also takes, minus numbers and bools,
/// which no record uses as keys).
struct Key;

macro_rules! not_a_key {
    ($($f:ident: $t:ty),*) => { $(fn $f(self, _: $t) -> Result<String, AuditError> { refuse("a non-string object key") })* };
}

impl serde::Serializer for Key {
    type Ok = String;
    type Error = AuditError;
    type SerializeSeq = serde::ser::Impossible<String, AuditError>;
    type SerializeTuple = serde::ser::Impossible<String, AuditError>;
    type SerializeTupleStruct = serde::ser::Impossible<String, AuditError>;
    type SerializeTupleVariant = serde::ser::Impossible<String, AuditError>;
    type SerializeMap = serde::ser::Impossible<String, AuditError>;
    type SerializeStruct = serde::ser::Impossible<String, AuditError>;
    type SerializeStructVariant = serde::ser::Impossible<String, AuditError>;

    fn serialize_str(self, v: &str) -> Result<String, AuditError> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, AuditError> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<String, AuditError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<String, AuditError> {
        v.serialize(self)
    }
    not_a_key!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32,
        serialize_f64: f64, serialize_bytes: &[u8], serialize_unit_struct: &'static str);
    fn serialize_none(self) -> Result<String, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_unit(self) -> Result<String, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<String, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, AuditError> {
        refuse("a non-string object key")
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant, AuditError> {
        refuse("a non-string object key")
    }
}

impl<'a> serde::Serializer for Canon<'a> {
    type Ok = ();
    type Error = AuditError;
    type SerializeSeq = Items<'a>;
    type SerializeTuple = Items<'a>;
    type SerializeTupleStruct = Items<'a>;
    type SerializeTupleVariant = Items<'a>;
    type SerializeMap = Members<'a>;
    type SerializeStruct = Members<'a>;
    type SerializeStructVariant = Members<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), AuditError> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), AuditError> {
        int(self.0, v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), AuditError> {
        int(self.0, v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), AuditError> {
        match i128::try_from(v) {
            Ok(v) => int(self.0, v),
            Err(_) => int(self.0, i128::MAX),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), AuditError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), AuditError> {
        Err(AuditError::Serialize(format!("number `{v}` is not an integer within ±(2^53-1); audit records carry integers only")))
    }
    fn serialize_char(self, v: char) -> Result<(), AuditError> {
        write_str(v.encode_utf8(&mut [0; 4]), self.0);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), AuditError> {
        write_str(v, self.0);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), AuditError> {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            serde::ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        serde::ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<(), AuditError> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), AuditError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), AuditError> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), AuditError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), AuditError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), AuditError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, variant: &'static str, v: &T) -> Result<(), AuditError> {
        self.0.push(b'{');
        write_str(variant, self.0);
        self.0.push(b':');
        v.serialize(Canon(self.0))?;
        self.0.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Items<'a>, AuditError> {
        self.0.push(b'[');
        Ok(Items { out: self.0, first: true, variant: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<Items<'a>, AuditError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Items<'a>, AuditError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Items<'a>, AuditError> {
        self.0.push(b'{');
        write_str(variant, self.0);
        self.0.extend_from_slice(b":[");
        Ok(Items { out: self.0, first: true, variant: true })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Members<'a>, AuditError> {
        Ok(Members::nested(self.0, len.unwrap_or(0), None))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Members<'a>, AuditError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, len: usize) -> Result<Members<'a>, AuditError> {
        Ok(Members::nested(self.0, len, Some(variant)))
    }
}

macro_rules! only_objects {
    ($($f:ident: $t:ty),*) => { $(fn $f(self, _: $t) -> Result<(), AuditError> { refuse("a record that is not an object") })* };
}

impl<'a> serde::Serializer for Top<'a> {
    type Ok = ();
    type Error = AuditError;
    type SerializeSeq = serde::ser::Impossible<(), AuditError>;
    type SerializeTuple = serde::ser::Impossible<(), AuditError>;
    type SerializeTupleStruct = serde::ser::Impossible<(), AuditError>;
    type SerializeTupleVariant = serde::ser::Impossible<(), AuditError>;
    type SerializeMap = Members<'a>;
    type SerializeStruct = Members<'a>;
    type SerializeStructVariant = serde::ser::Impossible<(), AuditError>;

    fn serialize_map(self, len: Option<usize>) -> Result<Members<'a>, AuditError> {
        Ok(Members {
            out: None,
            top: Some(self.0),
            members: Vec::with_capacity(len.unwrap_or(0)),
            spans: Vec::new(),
            body: 0,
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Members<'a>, AuditError> {
        self.serialize_map(Some(len))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), AuditError> {
        v.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), AuditError> {
        v.serialize(self)
    }
    only_objects!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8], serialize_unit_struct: &'static str);
    fn serialize_none(self) -> Result<(), AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_unit(self) -> Result<(), AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<(), AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant, AuditError> {
        refuse("a record that is not an object")
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant, AuditError> {
        refuse("a record that is not an object")
    }
}

/// serde's four list traits differ only in their method's name.
macro_rules! list_trait {
    ($($t:ident::$m:ident),*) => {$(
        impl serde::ser::$t for Items<'_> {
            type Ok = ();
            type Error = AuditError;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), AuditError> {
                self.item(v)
            }
            fn end(self) -> Result<(), AuditError> {
                Items::end(self)
            }
        }
    )*};
}
list_trait!(SerializeSeq::serialize_element, SerializeTuple::serialize_element, SerializeTupleStruct::serialize_field, SerializeTupleVariant::serialize_field);

impl serde::ser::SerializeMap for Members<'_> {
    type Ok = ();
    type Error = AuditError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), AuditError> {
        self.key = Some(key.serialize(Key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), AuditError> {
        let Some(key) = self.key.take() else { return refuse("an object value without its key") };
        self.member(Cow::Owned(key), v)
    }
    fn end(self) -> Result<(), AuditError> {
        Members::end(self)
    }
}

/// A struct and a struct variant are both objects of named fields.
macro_rules! struct_trait {
    ($($t:ident),*) => {$(
        impl serde::ser::$t for Members<'_> {
            type Ok = ();
            type Error = AuditError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), AuditError> {
                self.member(Cow::Borrowed(key), v)
            }
            fn end(self) -> Result<(), AuditError> {
                Members::end(self)
            }
        }
    )*};
}
struct_trait!(SerializeStruct, SerializeStructVariant);

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    // RFC 8785 escapes strings as ECMAScript's `JSON.stringify`, which is serde_json's escaping:
    // the masking engine's one JSON string writer.
    tracegate_core::mask::quote_json(s.as_bytes(), out);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sorts_members_and_escapes_minimally() {
        let v = json!({"b": [1, -2, "x\n\u{1}é"], "a": {"z": null, "y": true}, "é": "/"});
        let s = String::from_utf8(to_canonical(&v).unwrap()).unwrap();
        assert_eq!(s, r#"{"a":{"y":true,"z":null},"b":[1,-2,"x\n\u0001é"],"é":"/"}"#);
    }

    #[test]
    fn decimal_is_plain_decimal() {
        let safe = MAX_SAFE as i128;
        for n in [0, 1, 9, 10, 99, 100, -1, -9, -10, 12_345, safe, -safe, i128::MAX, i128::MIN + 1] {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn refuses_floats() {
        assert!(to_canonical(&json!({"x": 1.5})).is_err());
        assert!(to_canonical(&json!(9_007_199_254_740_992u64)).is_err());
    }

    #[test]
    fn object_matches_full_canonicalisation() {
        let v = json!({"seq": 3, "prev_hash": "ab", "kind": "request"});
        let parts: Vec<(String, Vec<u8>)> =
            v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), to_canonical(v).unwrap())).collect();
        let mut refs: Vec<(&str, &[u8])> = parts.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        assert_eq!(object(&mut refs), to_canonical(&v).unwrap());
    }

    /// Deterministic generated strings over an alphabet that has every escape, ASCII on both sides
    /// of the names we use, and characters whose UTF-8 and UTF-16 orders disagree (U+E000..U+FFFF
    /// against supplementary characters).
    fn strings(n: usize, max_len: u64) -> Vec<String> {
        const ALPHABET: &[char] = &[
            'a', 'b', 'h', 's', 'z', '_', '"', '\\', '/', '\u{0}', '\u{8}', '\t', '\n', '\u{c}', '\r', '\u{1f}', '\u{7f}',
            'é', '\u{7ff}', '\u{800}', '\u{d7ff}', '\u{e000}', '\u{fffd}', '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}',
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let len = (next() % (max_len + 1)) as usize;
                (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect()
            })
            .collect()
    }

    #[test]
    fn key_order_is_utf16_order() {
        let xs = strings(400, 6);
        for a in &xs {
            for b in &xs {
                assert_eq!(cmp_keys(a, b), a.encode_utf16().cmp(b.encode_utf16()), "{a:?} vs {b:?}");
                let longer = format!("{a}{b}");
                assert_eq!(cmp_keys(a, &longer), a.encode_utf16().cmp(longer.encode_utf16()), "{a:?} vs {longer:?}");
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_byte_by_byte() {
        // The escaping as first written, one byte at a time: the oracle.
        fn oracle(s: &str) -> Vec<u8> {
            let mut out = vec![b'"'];
            for &b in s.as_bytes() {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    0x0c => out.extend_from_slice(b"\\f"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                    _ => out.push(b),
                }
            }
            out.push(b'"');
            out
        }
        let all: String = (0u8..0x80).map(char::from).collect();
        // One byte of every kind at every offset of a plain string, so each lands in every lane of
        // a word and in the tail.
        let mut one: Vec<String> = Vec::new();
        for at in 0..27 {
            for c in (0u8..0x80).map(char::from).chain(['é', '\u{10000}']) {
                let mut s = "abcdefghijklmnopqrstuvwxyz".to_owned();
                s.insert(at, c);
                one.push(s);
            }
        }
        for s in strings(3000, 40).iter().chain(&one).chain([&all, &String::new()]) {
            let mut got = b"x".to_vec();
            write_str(s, &mut got);
            assert_eq!(got[1..], oracle(s)[..], "{s:?}");
            assert_eq!(serde_json::from_slice::<String>(&got[1..]).unwrap(), *s);
        }
    }

    #[test]
    fn noted_offset_is_where_the_member_splices_in() {
        let names = strings(60, 6);
        for (i, name) in names.iter().enumerate() {
            // Distinct names other than `name`, a varying number of them.
            let mut others: Vec<&str> = names.iter().take(i % 9).map(String::as_str).filter(|k| k != name).collect();
            others.sort_unstable();
            others.dedup();
            let mut parts: Vec<(&str, &[u8])> = others.iter().map(|k| (*k, b"1".as_slice())).collect();
            let mut body = Vec::new();
            let at = write_object_noting(&mut parts, &mut body, name);
            let mut member = Vec::new();
            write_str(name, &mut member);
            member.extend_from_slice(b":2");
            let (head, tail) = body.split_at(at);
            let spliced = match (tail.len() > 1, parts.is_empty()) {
                (true, _) => [head, &member, b",", tail].concat(),
                (false, true) => [head, &member, tail].concat(),
                (false, false) => [head, b",", &member, tail].concat(),
            };
            parts.push((name, b"2"));
            assert_eq!(spliced, object(&mut parts), "{name:?} among {others:?}");
        }
    }

    /// A generated value of nested objects (names in generated, mostly unsorted order), lists,
    /// strings and integers.
    fn value(next: &mut impl FnMut() -> u64, names: &[String], depth: u32) -> Value {
        match next() % if depth == 0 { 2 } else { 5 } {
            0 => Value::String(names[(next() % names.len() as u64) as usize].clone()),
            1 => json!((next() % (2 * MAX_SAFE + 1)) as i64 - MAX_SAFE as i64),
            2 => Value::Array((0..next() % 4).map(|_| value(next, names, depth - 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..next() % 7 {
                    let k = names[(next() % names.len() as u64) as usize].clone();
                    map.insert(k, value(next, names, depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    #[test]
    fn nested_objects_written_in_place_match_full_canonicalisation() {
        // Differential: objects inside a record are written straight to the output and reordered
        // only when their members came out of order; the tree canonicalisation is the oracle.
        let names = strings(40, 4);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2_000 {
            let mut map = serde_json::Map::new();
            for _ in 0..next() % 5 {
                let k = names[(next() % names.len() as u64) as usize].clone();
                map.insert(k, value(&mut next, &names, 4));
            }
            let v = Value::Object(map);
            let got = members(&v).unwrap();
            let mut refs: Vec<(&str, &[u8])> = got.iter().map(|(k, v)| (k.as_ref(), v.as_slice())).collect();
            assert_eq!(String::from_utf8(object(&mut refs)).unwrap(), String::from_utf8(to_canonical(&v).unwrap()).unwrap());
        }
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Wrapped { zeta: u8, alpha: Vec<u8>, mid: &'static str },
    }

    #[derive(serde::Serialize)]
    struct Unsorted {
        b: u8,
        a: Shape,
        #[serde(skip_serializing_if = "Option::is_none")]
        c: Option<u8>,
        inner: Inner,
    }

    #[derive(serde::Serialize)]
    struct Inner {
        y: &'static str,
        x: Vec<Inner>,
    }

    #[test]
    fn struct_fields_and_variants_out_of_order_are_sorted() {
        let v = Unsorted {
            b: 1,
            a: Shape::Wrapped { zeta: 2, alpha: vec![3, 4], mid: "m" },
            c: None,
            inner: Inner { y: "y", x: vec![Inner { y: "z", x: vec![] }] },
        };
        let got = members(&v).unwrap();
        let mut refs: Vec<(&str, &[u8])> = got.iter().map(|(k, v)| (k.as_ref(), v.as_slice())).collect();
        assert_eq!(object(&mut refs), to_canonical(&serde_json::to_value(&v).unwrap()).unwrap());
    }

    struct Repeated(&'static [&'static str]);

    impl serde::Serialize for Repeated {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|k| (*k, 1)))
        }
    }

    #[test]
    fn a_repeated_name_is_refused_inside_as_at_the_top() {
        for keys in [&["a", "b", "a"][..], &["b", "a", "b"], &["a", "a"]] {
            assert!(members(&Repeated(keys)).is_err(), "{keys:?} at the top");
            assert!(members(&json!({"outer": [1]})).is_ok());
            let mut wrap = std::collections::BTreeMap::new();
            wrap.insert("outer", Repeated(keys));
            assert!(members(&wrap).is_err(), "{keys:?} inside");
        }
        let mut wrap = std::collections::BTreeMap::new();
        wrap.insert("outer", Repeated(&["b", "a"]));
        let got = members(&wrap).unwrap();
        assert_eq!(got[0].1, br#"{"a":1,"b":1}"#.to_vec());
    }
}
