//! The `#[vaxila::instrument]` attribute macro. Use it through the `vaxila` crate.

use proc_macro::TokenStream;

/// Wraps a function in a span.
#[proc_macro_attribute]
pub fn instrument(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
