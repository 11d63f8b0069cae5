//! `abi_enum!`: a `#[repr(u32)]` enum that crosses the boundary, with a `TryFrom<u32>` that rejects
//! unknown values (the other side may be newer or corrupt) and the list of every value.

/// Declares a `#[repr(u32)]` ABI enum with `ALL` and a checked `TryFrom<u32>` (unknown → `Err(value)`).
///
/// A second form also gives each value a name and a one-line description:
/// `Variant = 1 => "NAME", "what went wrong",` generates `name()` and `description()`.
#[macro_export]
macro_rules! abi_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal, $desc:literal ),+ $(,)?
        }
    ) => {
        $crate::abi_enum! {
            $(#[$meta])*
            pub enum $name {
                $( $(#[$vmeta])* $variant = $value ),+
            }
        }

        impl $name {
            /// The code's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label ),+
                }
            }

            /// One line saying what went wrong.
            pub const fn description(self) -> &'static str {
                match self {
                    $( $name::$variant => $desc ),+
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl TryFrom<u32> for $name {
            type Error = u32;
            fn try_from(v: u32) -> Result<Self, u32> {
                $( if v == $value { return Ok($name::$variant); } )+
                Err(v)
            }
        }
    };
}
