//! The `#[vaxila::instrument]` attribute macro. Use it through the `vaxila` crate.

mod args;
mod ctxt;
mod expand;
mod item;
mod valid;

use proc_macro::TokenStream;

/// Wraps a function in a span.
#[proc_macro_attribute]
pub fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(args.into(), item.into()).into()
}
