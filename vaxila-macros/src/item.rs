//! The function under the attribute: its signature parsed, its body kept as tokens.
//!
//! The body is not parsed up front: a body that does not parse yet (while
//! someone is typing) is handed on as it is, so rust-analyzer keeps working
//! inside it and the compiler reports the real mistake.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::token::Brace;
use syn::{
    Attribute, Block, Expr, ExprAsync, FnArg, Ident, Pat, Signature, Stmt, Token, Visibility,
};

/// A function item, or a method in an `impl` or a trait.
pub(crate) struct Function {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The body's braces: the new body keeps their span, without which the
    /// compiler takes the whole function for macro output and stops
    /// reporting lints such as `dead_code` on it.
    pub(crate) brace: Brace,
    /// `#![...]` at the top of the body.
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The rest of the body, as written.
    pub(crate) body: TokenStream,
}

impl Parse for Function {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let starts_fn = input.peek(Token![fn])
            || input.peek(Token![const])
            || input.peek(Token![async])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !starts_fn {
            return Err(input.error("`#[vaxila::instrument]` applies to functions"));
        }
        let sig = input.parse()?;
        if input.peek(Token![;]) {
            let semi: Token![;] = input.parse()?;
            return Err(syn::Error::new_spanned(
                semi,
                "`#[vaxila::instrument]` needs a function body",
            ));
        }
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(Self {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

/// A parameter name that `args` and `skip` may refer to.
pub(crate) struct Param {
    /// The binding, with the user's span so that it names the parameter.
    pub(crate) ident: Ident,
    /// `self`, which `args(..)` leaves out.
    pub(crate) is_self: bool,
}

impl Function {
    /// Every name the parameters bind, destructured ones included.
    pub(crate) fn params(&self) -> Vec<Param> {
        let mut params = Vec::new();
        for input in &self.sig.inputs {
            match input {
                FnArg::Receiver(receiver) => params.push(Param {
                    ident: Ident::new("self", receiver.self_token.span),
                    is_self: true,
                }),
                FnArg::Typed(typed) => bindings(&typed.pat, &mut params),
            }
        }
        params
    }

    /// What the body returns when it is not an `async fn`: an `async` block,
    /// possibly boxed (the shape `#[async_trait]` leaves), or anything else.
    pub(crate) fn future_body(&self) -> Option<FutureBody> {
        if self.sig.asyncness.is_some() {
            return None;
        }
        let mut stmts = syn::parse::Parser::parse2(Block::parse_within, self.body.clone()).ok()?;
        let Some(Stmt::Expr(tail, None)) = stmts.pop() else {
            return None;
        };
        match tail {
            Expr::Async(block) => Some(FutureBody {
                stmts,
                boxed: None,
                block,
            }),
            Expr::Call(call)
                if call.args.len() == 1
                    && matches!(&*call.func, Expr::Path(path) if is_box_pin(&path.path)) =>
            {
                let mut args: Punctuated<Expr, Token![,]> = call.args;
                match args.pop().map(syn::punctuated::Pair::into_value) {
                    Some(Expr::Async(block)) => Some(FutureBody {
                        stmts,
                        boxed: Some(*call.func),
                        block,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A body ending in `async move { ... }` or `Box::pin(async move { ... })`.
pub(crate) struct FutureBody {
    /// The statements before it, which run when the function is called.
    pub(crate) stmts: Vec<Stmt>,
    /// `Box::pin`, when the block is boxed.
    pub(crate) boxed: Option<Expr>,
    pub(crate) block: ExprAsync,
}

/// `Box::pin`, however it is spelt (`::std::boxed::Box::pin`).
fn is_box_pin(path: &syn::Path) -> bool {
    let mut segments = path.segments.iter().rev();
    segments.next().is_some_and(|s| s.ident == "pin")
        && segments.next().is_some_and(|s| s.ident == "Box")
}

fn bindings(pat: &Pat, params: &mut Vec<Param>) {
    match pat {
        Pat::Ident(pat) => {
            params.push(Param {
                ident: pat.ident.clone(),
                is_self: false,
            });
            if let Some((_, sub)) = &pat.subpat {
                bindings(sub, params);
            }
        }
        Pat::Tuple(pat) => pat.elems.iter().for_each(|p| bindings(p, params)),
        Pat::TupleStruct(pat) => pat.elems.iter().for_each(|p| bindings(p, params)),
        Pat::Slice(pat) => pat.elems.iter().for_each(|p| bindings(p, params)),
        Pat::Struct(pat) => pat.fields.iter().for_each(|f| bindings(&f.pat, params)),
        Pat::Reference(pat) => bindings(&pat.pat, params),
        Pat::Paren(pat) => bindings(&pat.pat, params),
        Pat::Type(pat) => bindings(&pat.pat, params),
        _ => {}
    }
}
