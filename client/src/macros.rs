//! Glue shared by the request builders.
//!
//! Each request exists twice: a plain builder (`GetRequest`) usable inside a
//! txn, and a client-bound builder (`Get`) that can be awaited. The macro
//! gives the bound builder the plain builder's chainable options without
//! writing every forwarding method by hand.

/// Implements chainable option methods on a client-bound builder by
/// delegating to the same-named method of its inner plain builder.
macro_rules! forward_options {
    ($bound:ident . $field:ident { $( $(#[$doc:meta])* fn $name:ident ( $( $arg:ident : $ty:ty ),* ); )* }) => {
        impl $bound {
            $(
                $(#[$doc])*
                pub fn $name(mut self $(, $arg: $ty)*) -> Self {
                    self.$field = self.$field.$name($($arg),*);
                    self
                }
            )*
        }
    };
}

/// Implements `IntoFuture` for a client-bound builder: `$call` turns the
/// builder into the future of the response.
macro_rules! await_as {
    ($bound:ident => $output:ty, |$this:ident| $call:expr) => {
        impl std::future::IntoFuture for $bound {
            type Output = $crate::error::Result<$output>;
            type IntoFuture = $crate::BoxFuture<$crate::error::Result<$output>>;

            fn into_future(self) -> Self::IntoFuture {
                let $this = self;
                Box::pin(async move { $call.await })
            }
        }
    };
}
