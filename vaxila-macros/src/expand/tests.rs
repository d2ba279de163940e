//! Snapshots of the expansion for the shapes that matter, to be read as code.

use proc_macro2::TokenStream;
use quote::quote;

fn expand(args: TokenStream, item: TokenStream) -> String {
    let tokens = super::instrument(args, item);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(error) => panic!("the expansion does not parse: {error}\n{tokens}"),
    }
}

#[test]
fn sync_fn() {
    insta::assert_snapshot!(expand(
        quote!(args(id, %name), fields(user.id = id + 1)),
        quote! {
            /// Docs stay.
            #[must_use]
            pub fn awesome_action(id: i64, name: &str) -> usize {
                name.len() + id as usize
            }
        },
    ));
}

#[test]
fn sync_fn_returning_nothing() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            fn tick() {
                println!("tick");
            }
        },
    ));
}

#[test]
fn result_fn() {
    insta::assert_snapshot!(expand(
        quote!(args(..), skip(password), ret),
        quote! {
            fn load(path: &Path, password: &str, retries: u32) -> io::Result<Vec<u8>> {
                let bytes = std::fs::read(path)?;
                Ok(bytes)
            }
        },
    ));
}

#[test]
fn method() {
    insta::assert_snapshot!(expand(
        quote!(
            name = "store.get",
            kind = client,
            args(key),
            fields(size = self.len())
        ),
        quote! {
            pub fn get<'a>(&'a self, key: &str) -> Option<&'a Value> {
                self.map.get(key)
            }
        },
    ));
}

#[test]
fn async_fn() {
    insta::assert_snapshot!(expand(
        quote!(args(id), parent = &cx),
        quote! {
            async fn fetch(id: u64, cx: Context) -> Result<User, Error> {
                let user = db::get(id).await?;
                Ok(user)
            }
        },
    ));
}

#[test]
fn fn_returning_an_async_block() {
    insta::assert_snapshot!(expand(
        quote!(root),
        quote! {
            fn spawnable(id: u64) -> impl Future<Output = Result<(), Error>> + Send + 'static {
                let client = CLIENT.clone();
                async move { client.send(id).await }
            }
        },
    ));
}

#[test]
fn async_trait_method() {
    // What `#[async_trait]` makes of `async fn get(&self, key: &str) -> Option<String>`.
    insta::assert_snapshot!(expand(
        quote!(args(key)),
        quote! {
            fn get<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
            ) -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Option<String>> + ::core::marker::Send + 'async_trait>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    let __self = self;
                    let __ret: Option<String> = { __self.map.get(key).cloned() };
                    #[allow(unreachable_code)]
                    __ret
                })
            }
        },
    ));
}

#[test]
fn mistakes_keep_the_function_and_add_one_error_each() {
    insta::assert_snapshot!(expand(
        quote!(level = "info", args(user)),
        quote! {
            fn work(id: i64) -> i64 {
                id
            }
        },
    ));
}

#[test]
fn body_that_does_not_parse_is_kept_as_written() {
    // What rust-analyzer sends while someone types: the body is moved as
    // it is, and the compiler reports the real mistake inside it.
    let tokens = super::instrument(
        quote!(),
        quote! {
            fn typing(id: i64) -> i64 {
                let x = ;
                id
            }
        },
    );
    insta::assert_snapshot!(tokens.to_string());
}

#[test]
fn secret_looking_names_are_whole_words() {
    use super::looks_secret;
    for name in [
        "password",
        "db_password",
        "passwd",
        "client_secret",
        "access_token",
        "tokens",
        "api_key",
        "apiKey",
        "private_key",
        "auth",
        "authorization",
        "credentials",
        "cookie",
        "session_id",
    ] {
        assert!(looks_secret(name), "{name}");
    }
    for name in [
        "author",
        "authority",
        "key",
        "tokenizer",
        "user",
        "sessionless",
    ] {
        assert!(!looks_secret(name), "{name}");
    }
}

#[test]
fn items_other_than_functions_are_kept_with_one_error() {
    let tokens = super::instrument(quote!(), quote! { struct Config; });
    let expected = quote! {
        struct Config;
        ::core::compile_error! { "`#[vaxila::instrument]` applies to functions" }
    };
    assert_eq!(tokens.to_string(), expected.to_string());
}
