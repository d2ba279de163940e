//! `AttributeValue`: how a Rust value becomes a typed span attribute.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use opentelemetry::{Array, StringValue, Value};

/// A value that can be recorded as a typed span attribute.
///
/// `#[vaxila::instrument(args(x))]`, `fields(k = x)`, [`span(..).attr(k, x)`](crate::span)
/// and [`current_span().set_attribute(k, x)`](crate::current_span) record `x`
/// through this trait, so an integer stays an integer in Vaxila, a list stays a
/// list, and `None` records nothing at all.
///
/// | Rust | OpenTelemetry |
/// |---|---|
/// | `bool` | bool |
/// | `i8` … `i64`, `isize`, `u8` … `u32` | int |
/// | `u64`, `usize`, `u128`, `i128` | int when it fits in `i64`, else its decimal string |
/// | `f32`, `f64` | double |
/// | `char`, `str`, `String`, `Cow<str>`, `Box<str>`, `Rc<str>`, `Arc<str>` | string |
/// | `Option<T>` | `T`'s value, or nothing for `None` |
/// | `[T]`, `[T; N]`, `Vec<T>`, `VecDeque<T>` | an array of `T` (strings if the elements disagree) |
/// | `&T`, `&mut T`, `Box<T>`, `Rc<T>`, `Arc<T>` | `T`'s value |
///
/// Implement it for your own types to record them without `%` or `?`:
///
/// ```
/// use vaxila::AttributeValue;
/// use vaxila::opentelemetry::Value;
///
/// struct UserId(u32);
///
/// impl AttributeValue for UserId {
///     fn to_value(&self) -> Option<Value> {
///         self.0.to_value()
///     }
/// }
///
/// assert_eq!(UserId(7).to_value(), Some(Value::I64(7)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a span attribute",
    label = "`{Self}` does not implement `vaxila::AttributeValue`",
    note = "implement `vaxila::AttributeValue` for it, or record its `Display` text with `%name` or its `Debug` text with `?name`"
)]
pub trait AttributeValue {
    /// The OpenTelemetry value to record, or `None` to record nothing.
    fn to_value(&self) -> Option<Value>;
}

macro_rules! lossless_int {
    ($($t:ty)*) => {$(
        impl AttributeValue for $t {
            #[inline]
            fn to_value(&self) -> Option<Value> {
                Some(Value::I64(i64::from(*self)))
            }
        }
    )*};
}
lossless_int!(i8 i16 i32 i64 u8 u16 u32);

macro_rules! wide_int {
    ($($t:ty)*) => {$(
        impl AttributeValue for $t {
            #[inline]
            fn to_value(&self) -> Option<Value> {
                // OTLP integers are i64: a value that does not fit keeps every
                // digit as a string rather than wrapping around.
                Some(match i64::try_from(*self) {
                    Ok(v) => Value::I64(v),
                    Err(_) => Value::String(self.to_string().into()),
                })
            }
        }
    )*};
}
wide_int!(isize u64 usize i128 u128);

impl AttributeValue for bool {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        Some(Value::Bool(*self))
    }
}

impl AttributeValue for f64 {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        Some(Value::F64(*self))
    }
}

impl AttributeValue for f32 {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        Some(Value::F64(f64::from(*self)))
    }
}

impl AttributeValue for char {
    fn to_value(&self) -> Option<Value> {
        Some(Value::String(self.to_string().into()))
    }
}

impl AttributeValue for str {
    fn to_value(&self) -> Option<Value> {
        Some(Value::String(self.to_owned().into()))
    }
}

impl AttributeValue for String {
    fn to_value(&self) -> Option<Value> {
        self.as_str().to_value()
    }
}

impl AttributeValue for Cow<'_, str> {
    fn to_value(&self) -> Option<Value> {
        Some(Value::String(match self {
            Cow::Borrowed(s) => StringValue::from(s.to_string()),
            Cow::Owned(s) => StringValue::from(s.clone()),
        }))
    }
}

impl AttributeValue for Value {
    fn to_value(&self) -> Option<Value> {
        Some(self.clone())
    }
}

impl AttributeValue for StringValue {
    fn to_value(&self) -> Option<Value> {
        Some(Value::String(self.clone()))
    }
}

impl<T: AttributeValue> AttributeValue for Option<T> {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        self.as_ref().and_then(T::to_value)
    }
}

macro_rules! forward {
    ($($ptr:ident)*) => {$(
        impl<T: AttributeValue + ?Sized> AttributeValue for $ptr<T> {
            #[inline]
            fn to_value(&self) -> Option<Value> {
                (**self).to_value()
            }
        }
    )*};
}
forward!(Box Rc Arc);

impl<T: AttributeValue + ?Sized> AttributeValue for &T {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        (**self).to_value()
    }
}

impl<T: AttributeValue + ?Sized> AttributeValue for &mut T {
    #[inline]
    fn to_value(&self) -> Option<Value> {
        (**self).to_value()
    }
}

impl<T: AttributeValue> AttributeValue for [T] {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Array(array(self.iter())))
    }
}

impl<T: AttributeValue, const N: usize> AttributeValue for [T; N] {
    fn to_value(&self) -> Option<Value> {
        self.as_slice().to_value()
    }
}

impl<T: AttributeValue> AttributeValue for Vec<T> {
    fn to_value(&self) -> Option<Value> {
        self.as_slice().to_value()
    }
}

impl<T: AttributeValue> AttributeValue for VecDeque<T> {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Array(array(self.iter())))
    }
}

/// OTLP arrays are homogeneous: elements of one kind keep it, anything else
/// (a `u64` array mixing small and huge numbers, nested arrays) becomes strings.
/// Elements that record nothing (`None`) are left out.
fn array<'a, T: AttributeValue + 'a>(items: impl Iterator<Item = &'a T>) -> Array {
    homogeneous(items.filter_map(T::to_value).collect())
}

/// `values` as one OTLP array: of their kind when they share one, else strings.
pub(crate) fn homogeneous(values: Vec<Value>) -> Array {
    macro_rules! all {
        ($variant:ident) => {
            values
                .iter()
                .map(|v| match v {
                    Value::$variant(x) => Some(x.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
        };
    }
    if let Some(v) = all!(I64) {
        Array::I64(v)
    } else if let Some(v) = all!(F64) {
        Array::F64(v)
    } else if let Some(v) = all!(Bool) {
        Array::Bool(v)
    } else {
        Array::String(
            values
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string().into(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_that_fit_are_ints_and_wider_ones_keep_their_digits() {
        assert_eq!(
            u64::MAX.to_value(),
            Some(Value::String("18446744073709551615".into()))
        );
        assert_eq!(42u64.to_value(), Some(Value::I64(42)));
        assert_eq!((-3i128).to_value(), Some(Value::I64(-3)));
        assert_eq!(
            u128::MAX.to_value(),
            Some(Value::String(u128::MAX.to_string().into()))
        );
    }

    #[test]
    fn arrays_are_homogeneous() {
        assert_eq!(
            vec![1, 2].to_value(),
            Some(Value::Array(Array::I64(vec![1, 2])))
        );
        assert_eq!(
            [true].to_value(),
            Some(Value::Array(Array::Bool(vec![true])))
        );
        assert_eq!(
            vec![1u64, u64::MAX].to_value(),
            Some(Value::Array(Array::String(vec![
                "1".into(),
                u64::MAX.to_string().into()
            ])))
        );
        assert_eq!(
            vec![Some("a"), None, Some("b")].to_value(),
            Some(Value::Array(Array::String(vec!["a".into(), "b".into()])))
        );
    }

    #[test]
    fn none_records_nothing() {
        assert_eq!(None::<i64>.to_value(), None);
        assert_eq!(
            Some(&Arc::<str>::from("x")).to_value(),
            Some(Value::String("x".into()))
        );
    }
}
