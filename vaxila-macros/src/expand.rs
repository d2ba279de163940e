//! Writes the instrumented function.
//!
//! Every shape starts the span the same way ([`Expander::start`]), runs the
//! body inside it ([`Expander::sync_fn`], [`Expander::async_fn`],
//! [`Expander::future_fn`]) and then records the outcome
//! ([`Expander::outcome`]). Generated code names only `__private`, `::core`
//! and locals made with `Span::mixed_site()`, which the user's code can
//! neither see nor shadow.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::visit_mut::VisitMut;
use syn::{Expr, GenericArgument, Ident, PathArguments, ReturnType, Type, TypeParamBound};

use crate::args::{Args, How};
use crate::ctxt::Ctxt;
use crate::item::{Function, FutureBody};
use crate::{args, valid};

/// `#[vaxila::instrument(args)] item`, from tokens to tokens.
///
/// On any mistake it returns `item` unchanged with one error per mistake,
/// so that the function still exists and nothing else fails because of it.
pub(crate) fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = args::parse(args, &mut cx);
    let func = match syn::parse2::<Function>(item.clone()) {
        Ok(func) => {
            valid::check(&args, &func, &mut cx);
            Some(func)
        }
        Err(error) => {
            cx.syn_error(error);
            None
        }
    };
    match (cx.check(), func) {
        (Ok(()), Some(func)) => Expander::new(&args, &func).expand(),
        (Err(errors), _) => {
            let errors = errors.into_compile_error();
            quote!(#item #errors)
        }
        (Ok(()), None) => item,
    }
}

struct Expander<'a> {
    args: &'a Args,
    func: &'a Function,
    /// `::vaxila::__private`, or under the `crate = path` given.
    private: TokenStream,
    /// The span local.
    span: Ident,
    /// The local that holds the return value.
    ret: Ident,
}

impl<'a> Expander<'a> {
    fn new(args: &'a Args, func: &'a Function) -> Self {
        let private = match &args.krate {
            Some(path) => quote!(#path::__private),
            None => quote!(::vaxila::__private),
        };
        Self {
            args,
            func,
            private,
            span: Ident::new("__vaxila_span", Span::mixed_site()),
            ret: Ident::new("__vaxila_ret", Span::mixed_site()),
        }
    }

    fn expand(&self) -> TokenStream {
        let Function {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        } = self.func;
        let body = if sig.asyncness.is_some() {
            self.async_fn(body)
        } else if let Some(future) = self.func.future_body() {
            self.future_fn(future)
        } else {
            self.sync_fn(body)
        };
        let mut tokens = quote!(#(#attrs)* #vis #sig);
        brace.surround(&mut tokens, |tokens| {
            tokens.extend(quote! {
                #(#inner_attrs)*
                #body
            });
        });
        tokens
    }

    /// The body of a plain function: run inside the span.
    ///
    /// The body becomes a `move` closure, called once: `return` and `?` keep
    /// their meaning, and a reference borrowed from a parameter can be
    /// returned. The typed `let` tells the closure its return type up front,
    /// which `?` needs.
    fn sync_fn(&self, body: &TokenStream) -> TokenStream {
        let Self {
            span, ret, private, ..
        } = self;
        let start = self.start();
        // Path calls, not method calls: a trait in the user's scope with a
        // method of the same name taking `self` (`tracing::Instrument`) would
        // win method resolution over the inherent `&mut self` one.
        let run = quote!(#private::Span::in_scope(&mut #span, move || { #body }));
        match &self.func.sig.output {
            ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)) => quote! {
                #start
                #run
            },
            ReturnType::Type(_, ty) if !is_unit(ty) => {
                let outcome = self.outcome();
                if outcome.is_empty() {
                    // Nothing to record: the return type, known from the
                    // signature, reaches the closure as it is.
                    return quote! {
                        #start
                        #run
                    };
                }
                let annotation = annotation(ty).map(|ty| quote!(: #ty));
                quote! {
                    #start
                    let #ret #annotation = #run;
                    #outcome
                    #ret
                }
            }
            _ => quote! {
                #start
                #run;
            },
        }
    }

    /// The body of an `async fn`: polled inside the span.
    ///
    /// All of it runs at the first poll, so the span starts then too.
    fn async_fn(&self, body: &TokenStream) -> TokenStream {
        let output = match &self.func.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        let start = self.start();
        let run = self.run_future(output, &quote!(async move { #body }));
        quote! {
            #start
            #run
        }
    }

    /// A function that returns an `async` block (possibly boxed, as
    /// `#[async_trait]` writes it): the statements before the block still run
    /// at the call, and the block starts the span at its first poll.
    fn future_fn(&self, future: FutureBody) -> TokenStream {
        let FutureBody {
            stmts,
            boxed,
            block,
        } = future;
        let output = future_output(&self.func.sig.output);
        let capture = block.capture;
        let attrs = &block.attrs;
        let inner = &block.block;
        let start = self.start();
        let run = self.run_future(output, &quote!(async #capture #inner));
        let outer = quote! {
            #(#attrs)*
            async #capture {
                #start
                #run
            }
        };
        let outer = match boxed {
            Some(pin) => quote!(#pin(#outer)),
            None => outer,
        };
        quote! {
            #(#stmts)*
            #outer
        }
    }

    /// Awaits `future` inside the span, then records its outcome.
    fn run_future(&self, output: Option<&Type>, future: &TokenStream) -> TokenStream {
        let Self {
            span, ret, private, ..
        } = self;
        let Some(output) = output.filter(|ty| !is_unit(ty)) else {
            // `()`, or an output the signature does not spell out (a
            // `BoxFuture<'_, T>` alias, an associated `Self::Future`): the
            // awaited value is the block's value, whatever its type.
            return quote!(#private::Span::instrument(&mut #span, #future).await);
        };
        // Naming the output type lets `?` and `return` in an `async` block
        // know what they convert to.
        let turbofish = annotation(output).map(|ty| quote!(::<#ty, _>));
        let outcome = self.outcome();
        quote! {
            let #ret = #private::Span::instrument #turbofish(&mut #span, #future).await;
            #outcome
            #ret
        }
    }

    /// The static description of the span, the span itself and its attributes.
    fn start(&self) -> TokenStream {
        let Self {
            args,
            private,
            span,
            ..
        } = self;
        let ident = &self.func.sig.ident;
        let name = match &args.name {
            Some(name) => name.to_token_stream(),
            None => ident.unraw().to_string().into_token_stream(),
        };
        let kind = match &args.kind {
            Some(kind) => kind.clone(),
            None => Ident::new("Internal", Span::call_site()),
        };
        let function = format!("::{}", ident.unraw());
        // Spanned at the function's name so that `line!()` is its line.
        let location = quote_spanned!(ident.span()=> ::core::file!(), ::core::line!());
        let start = match &args.parent {
            Some((_, parent)) => {
                quote!(#private::Span::start_with_parent(&__VAXILA_META, #parent))
            }
            None if args.root.is_some() => quote!(#private::Span::start_root(&__VAXILA_META)),
            None => quote!(#private::Span::start(&__VAXILA_META)),
        };
        let attributes = self.attributes();
        let attributes = (!attributes.is_empty()).then(|| {
            quote! {
                if #span.is_recording() {
                    #attributes
                }
            }
        });
        quote! {
            static __VAXILA_META: #private::Meta = #private::Meta::new(
                #name,
                #private::SpanKind::#kind,
                ::core::concat!(::core::module_path!(), #function),
                #location,
            );
            let mut #span = #start;
            #attributes
        }
    }

    /// `args(...)` in parameter order, then `fields(...)`.
    fn attributes(&self) -> TokenStream {
        let Self {
            args,
            private,
            span,
            ..
        } = self;
        let mut tokens = TokenStream::new();
        if let Some(list) = &args.args {
            let skipped = |ident: &Ident| {
                args.skip
                    .as_ref()
                    .is_some_and(|(_, skip)| skip.iter().any(|s| s == ident))
            };
            for param in self.func.params() {
                let key = param.ident.unraw().to_string();
                if let Some(arg) = list.named.iter().find(|arg| arg.ident == param.ident) {
                    // Spanned at the name in `args(...)`: a type that cannot be
                    // recorded is reported there.
                    let ident = &arg.ident;
                    tokens.extend(record(
                        span,
                        arg.how,
                        &key,
                        &quote_spanned!(ident.span()=> #ident),
                    ));
                } else if list.rest && !param.is_self && !skipped(&param.ident) {
                    let ident = &param.ident;
                    let redacted = looks_secret(&key).then(|| quote!(, redacted));
                    tokens.extend(quote!(#private::record_arg!(#span, #key, #ident #redacted);));
                }
            }
        }
        for field in &args.fields {
            let value = &field.value;
            let value = if needs_parens(value) {
                quote_spanned!(value.span()=> (#value))
            } else {
                value.to_token_stream()
            };
            tokens.extend(record(span, field.how, &field.key, &value));
        }
        tokens
    }

    /// The `ret` and `Err` recording, when asked for.
    fn outcome(&self) -> TokenStream {
        let Self {
            args,
            private,
            span,
            ret,
            ..
        } = self;
        let record_ret = args
            .ret
            .then(|| quote!(#private::record_ret!(#span, #ret);));
        let record_err =
            (args.err && self.may_be_result()).then(|| quote!(#private::record_err!(#span, #ret);));
        quote!(#record_ret #record_err)
    }
}

impl Expander<'_> {
    /// Whether the function may return a `Result`. Only a type path may name
    /// one (`io::Result<T>`, `AppResult`, a generic `T`); leaving the error
    /// probe out where none can keeps the expansion short.
    fn may_be_result(&self) -> bool {
        const PRIMITIVES: &[&str] = &[
            "bool", "char", "str", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32",
            "u64", "u128", "usize", "f32", "f64",
        ];
        let output = &self.func.sig.output;
        let ty = match output {
            ReturnType::Default => return false,
            ReturnType::Type(_, ty) => &**ty,
        };
        let ty = match future_output(output) {
            Some(future_output) if self.func.sig.asyncness.is_none() => future_output,
            _ => ty,
        };
        match ty {
            Type::Path(path) => {
                path.qself.is_some()
                    || !path
                        .path
                        .get_ident()
                        .is_some_and(|ident| PRIMITIVES.iter().any(|p| ident == p))
            }
            Type::Paren(_) | Type::Group(_) | Type::Macro(_) | Type::Verbatim(_) => true,
            _ => false,
        }
    }
}

/// `span.attr("key", &value);`, spanned at `value` so that a type that cannot
/// be recorded is reported at it.
fn record(span: &Ident, how: How, key: &str, value: &TokenStream) -> TokenStream {
    let at = value
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    let method = match how {
        How::Typed => Ident::new("attr", at),
        How::Display => Ident::new("attr_display", at),
        How::Debug => Ident::new("attr_debug", at),
    };
    quote_spanned!(at=> #span.#method(#key, &#value);)
}

/// The type to write down for a return value, or `None` when nothing useful
/// can be: `impl Trait` cannot be named in a body, so it becomes `_`.
fn annotation(ty: &Type) -> Option<Type> {
    struct ImplToInfer;
    impl VisitMut for ImplToInfer {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(impl_trait) = ty {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](impl_trait.impl_token.span),
                });
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    ImplToInfer.visit_type_mut(&mut ty);
    match ty {
        Type::Infer(_) | Type::Never(_) => None,
        ty => Some(ty),
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// `X` in `impl Future<Output = X>` or `Pin<Box<dyn Future<Output = X> + Send>>`.
fn future_output(output: &ReturnType) -> Option<&Type> {
    fn in_bounds<'t>(bounds: impl IntoIterator<Item = &'t TypeParamBound>) -> Option<&'t Type> {
        bounds.into_iter().find_map(|bound| {
            let TypeParamBound::Trait(bound) = bound else {
                return None;
            };
            let last = bound.path.segments.last()?;
            if last.ident != "Future" {
                return None;
            }
            let PathArguments::AngleBracketed(generics) = &last.arguments else {
                return None;
            };
            generics.args.iter().find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
                _ => None,
            })
        })
    }
    fn in_type(ty: &Type) -> Option<&Type> {
        match ty {
            Type::ImplTrait(ty) => in_bounds(&ty.bounds),
            Type::TraitObject(ty) => in_bounds(&ty.bounds),
            Type::Paren(ty) => in_type(&ty.elem),
            Type::Group(ty) => in_type(&ty.elem),
            // `Pin<Box<...>>`
            Type::Path(ty) => {
                let last = ty.path.segments.last()?;
                let PathArguments::AngleBracketed(generics) = &last.arguments else {
                    return None;
                };
                generics.args.iter().find_map(|arg| match arg {
                    GenericArgument::Type(ty) => in_type(ty),
                    _ => None,
                })
            }
            _ => None,
        }
    }
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => in_type(ty),
    }
}

/// Whether `&value` would bind wrongly without parentheses (`&a + b`).
fn needs_parens(value: &Expr) -> bool {
    !matches!(
        value,
        Expr::Path(_)
            | Expr::Field(_)
            | Expr::MethodCall(_)
            | Expr::Call(_)
            | Expr::Lit(_)
            | Expr::Index(_)
            | Expr::Macro(_)
            | Expr::Paren(_)
            | Expr::Reference(_)
            | Expr::Tuple(_)
            | Expr::Array(_)
    )
}

/// Whether a parameter name looks like it holds a secret, which `args(..)`
/// then records as `"[REDACTED]"`. Naming it in `args(...)` records it as it is.
fn looks_secret(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "auth",
        "authorization",
        "credential",
        "cookie",
        "session",
    ];
    const PAIRS: &[(&str, &str)] = &[("api", "key"), ("private", "key")];
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = name
        .split('_')
        .map(|w| {
            w.strip_suffix('s')
                .filter(|w| WORDS.contains(w))
                .unwrap_or(w)
        })
        .collect();
    words.iter().any(|w| WORDS.contains(w))
        || words
            .windows(2)
            .any(|pair| PAIRS.contains(&(pair[0], pair[1])))
}

#[cfg(test)]
mod tests;
