//! Checks the arguments against the function they instrument.

use crate::args::Args;
use crate::ctxt::Ctxt;
use crate::item::Function;

/// Records in `cx` every argument that does not fit `func`.
pub(crate) fn check(args: &Args, func: &Function, cx: &mut Ctxt) {
    if let Some(constness) = &func.sig.constness {
        cx.error_spanned_by(
            constness,
            "`#[vaxila::instrument]` cannot be used on a `const fn`",
        );
    }
    let params = func.params();
    let is_param = |name: &syn::Ident| params.iter().any(|p| p.ident == *name);

    let mut named: Vec<&syn::Ident> = Vec::new();
    if let Some(list) = &args.args {
        for arg in &list.named {
            if !is_param(&arg.ident) {
                cx.error_spanned_by(
                    &arg.ident,
                    format_args!("no parameter named `{}`", arg.ident),
                );
            } else if named.contains(&&arg.ident) {
                cx.error_spanned_by(
                    &arg.ident,
                    format_args!("`{}` is already in `args`", arg.ident),
                );
            } else {
                named.push(&arg.ident);
            }
        }
    }

    if let Some((keyword, skipped)) = &args.skip {
        if !args.args.as_ref().is_some_and(|list| list.rest) {
            cx.error_spanned_by(
                keyword,
                "`skip` applies to `args(..)`; without `..` only the parameters named in `args` are recorded",
            );
        }
        for ident in skipped {
            if !is_param(ident) {
                cx.error_spanned_by(ident, format_args!("no parameter named `{ident}`"));
            } else if named.contains(&ident) {
                cx.error_spanned_by(
                    ident,
                    format_args!("`{ident}` is both named in `args` and skipped"),
                );
            }
        }
    }

    if let (Some(root), Some(_)) = (&args.root, &args.parent) {
        cx.error_spanned_by(root, "`root` and `parent` cannot be used together");
    }
}
