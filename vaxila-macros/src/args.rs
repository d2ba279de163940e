//! Parses the arguments of `#[vaxila::instrument(...)]`.
//!
//! A mistake in one argument is recorded and parsing goes on at the next
//! comma, so that every mistake is reported in one build.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser as _};
use syn::{Expr, Ident, LitBool, LitStr, Path, Token};

use crate::ctxt::Ctxt;

const ARGUMENTS: &str =
    "`name`, `kind`, `args`, `skip`, `fields`, `ret`, `err`, `parent`, `root` or `crate`";

/// Everything the attribute asked for.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `kind = server`, as the `SpanKind` variant to name.
    pub(crate) kind: Option<Ident>,
    /// `args(...)`.
    pub(crate) args: Option<ArgList>,
    /// `skip(...)`, with the `skip` keyword for errors.
    pub(crate) skip: Option<(Ident, Vec<Ident>)>,
    /// `fields(...)`.
    pub(crate) fields: Vec<Field>,
    /// `ret`.
    pub(crate) ret: bool,
    /// `err = false` turns error recording off.
    pub(crate) err: bool,
    /// `parent = expr`, with the `parent` keyword for errors.
    pub(crate) parent: Option<(Ident, Expr)>,
    /// `root`.
    pub(crate) root: Option<Ident>,
    /// `crate = path`.
    pub(crate) krate: Option<Path>,
}

/// `args(a, %b, ?c, ..)`.
pub(crate) struct ArgList {
    /// `..`: every other recordable parameter too.
    pub(crate) rest: bool,
    /// The parameters named, in order.
    pub(crate) named: Vec<Arg>,
}

/// One parameter named in `args(...)`.
pub(crate) struct Arg {
    pub(crate) how: How,
    pub(crate) ident: Ident,
}

/// `fields(key = value)`.
pub(crate) struct Field {
    /// The key as recorded: `user.id` for `user.id = ...` and `"user.id" = ...`.
    pub(crate) key: String,
    pub(crate) how: How,
    pub(crate) value: Expr,
}

/// How a value is recorded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// Typed, through `AttributeValue`.
    Typed,
    /// `%x`: its `Display` text.
    Display,
    /// `?x`: its `Debug` text.
    Debug,
}

/// Parses the attribute's arguments, recording every mistake in `cx`.
pub(crate) fn parse(tokens: TokenStream, cx: &mut Ctxt) -> Args {
    let mut args = Args {
        err: true,
        ..Args::default()
    };
    let mut seen: Vec<String> = Vec::new();
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            let key = input.call(Ident::parse_any)?;
            let name = key.unraw().to_string();
            let parsed = if seen.contains(&name) {
                Err(syn::Error::new_spanned(
                    &key,
                    format_args!("duplicate `{name}` argument"),
                ))
            } else {
                seen.push(name);
                parse_argument(&mut args, &key, input)
            };
            if let Err(error) = parsed {
                cx.syn_error(error);
                skip_to_comma(input)?;
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
    }
    args
}

fn parse_argument(args: &mut Args, key: &Ident, input: ParseStream<'_>) -> syn::Result<()> {
    match key.to_string().as_str() {
        "name" => {
            expect_eq(input, key, "name = \"...\"")?;
            args.name = Some(input.parse()?);
        }
        "kind" => {
            expect_eq(input, key, "kind = server")?;
            args.kind = Some(parse_kind(input)?);
        }
        "args" => {
            let list = parenthesized(input, key, "args(a, %b, ?c, ..)")?;
            args.args = Some(parse_arg_list.parse2(list)?);
        }
        "skip" => {
            let list = parenthesized(input, key, "skip(a, b)")?;
            let idents = (|input: ParseStream<'_>| {
                let idents = input.parse_terminated(Ident::parse_any, Token![,])?;
                Ok(idents.into_iter().collect())
            })
            .parse2(list)?;
            args.skip = Some((key.clone(), idents));
        }
        "fields" => {
            let list = parenthesized(input, key, "fields(key = value)")?;
            args.fields = (|input: ParseStream<'_>| {
                let fields = input.parse_terminated(parse_field, Token![,])?;
                Ok(fields.into_iter().collect())
            })
            .parse2(list)?;
        }
        "ret" => {
            expect_bare(input, key)?;
            args.ret = true;
        }
        "err" => {
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                args.err = input.parse::<LitBool>()?.value;
            } else {
                expect_bare(input, key)?;
            }
        }
        "parent" => {
            expect_eq(input, key, "parent = &cx")?;
            args.parent = Some((key.clone(), input.parse()?));
        }
        "root" => {
            expect_bare(input, key)?;
            args.root = Some(key.clone());
        }
        "crate" => {
            expect_eq(input, key, "crate = path::to::vaxila")?;
            args.krate = Some(input.call(Path::parse_mod_style)?);
        }
        _ => {
            return Err(syn::Error::new_spanned(
                key,
                format_args!("unknown argument `{key}`; expected {ARGUMENTS}"),
            ));
        }
    }
    Ok(())
}

fn parse_kind(input: ParseStream<'_>) -> syn::Result<Ident> {
    let kind = input.call(Ident::parse_any)?;
    let variant = match kind.to_string().as_str() {
        "server" => "Server",
        "client" => "Client",
        "producer" => "Producer",
        "consumer" => "Consumer",
        "internal" => "Internal",
        _ => {
            return Err(syn::Error::new_spanned(
                &kind,
                format_args!(
                    "unknown span kind `{kind}`; expected `server`, `client`, `producer`, `consumer` or `internal`"
                ),
            ));
        }
    };
    Ok(Ident::new(variant, kind.span()))
}

/// `a`, `%b`, `?c` or `..`, separated by commas.
fn parse_arg_list(input: ParseStream<'_>) -> syn::Result<ArgList> {
    let mut list = ArgList {
        rest: false,
        named: Vec::new(),
    };
    while !input.is_empty() {
        if input.peek(Token![..]) {
            input.parse::<Token![..]>()?;
            list.rest = true;
        } else {
            let how = parse_how(input)?;
            if input.is_empty() {
                return Err(input.error("expected a parameter name"));
            }
            let ident = input.call(Ident::parse_any)?;
            list.named.push(Arg { how, ident });
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(list)
}

/// `user.id = expr`, `"http.route" = %expr`, `k = ?expr`.
fn parse_field(input: ParseStream<'_>) -> syn::Result<Field> {
    let (key, key_tokens) = if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        (lit.value(), quote::quote!(#lit))
    } else {
        let first = input.call(Ident::parse_any)?;
        let mut key = first.unraw().to_string();
        let mut tokens = quote::quote!(#first);
        while input.peek(Token![.]) {
            let dot: Token![.] = input.parse()?;
            let part = input.call(Ident::parse_any)?;
            key.push('.');
            key.push_str(&part.unraw().to_string());
            tokens.extend(quote::quote!(#dot #part));
        }
        (key, tokens)
    };
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            key_tokens,
            format_args!("expected `=` and a value after the field `{key}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let how = parse_how(input)?;
    let value = input.parse()?;
    Ok(Field { key, how, value })
}

fn parse_how(input: ParseStream<'_>) -> syn::Result<How> {
    Ok(if input.peek(Token![%]) {
        input.parse::<Token![%]>()?;
        How::Display
    } else if input.peek(Token![?]) {
        input.parse::<Token![?]>()?;
        How::Debug
    } else {
        How::Typed
    })
}

fn expect_eq(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            key,
            format_args!("expected `{example}`"),
        ))
    }
}

fn expect_bare(input: ParseStream<'_>, key: &Ident) -> syn::Result<()> {
    if input.is_empty() || input.peek(Token![,]) {
        Ok(())
    } else {
        Err(input.error(format_args!("`{key}` takes no value")))
    }
}

/// The tokens inside the parentheses that follow `key`.
fn parenthesized(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<TokenStream> {
    // Parsed apart from `input`, so that a mistake inside the parentheses
    // cannot leave tokens behind that `input` would then report again.
    if let Some((TokenTree::Group(group), _)) = input.cursor().token_tree()
        && group.delimiter() == Delimiter::Parenthesis
    {
        input.parse::<TokenTree>()?;
        return Ok(group.stream());
    }
    Err(syn::Error::new_spanned(
        key,
        format_args!("expected `{example}`"),
    ))
}

fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}
