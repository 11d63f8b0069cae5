//! Register values of the AICore protocol: dispatch tokens, condition values and fault words.
//!
//! A dispatch token is a per-core sequence number, `1 ..= LAST_TOKEN`, that grows by one per
//! dispatch; [`DISPATCH_IDLE`] (0) and [`DISPATCH_EXIT`] (`u64::MAX`) are never tokens. A condition
//! value is a kind in the top 8 bits (`COND_ACK`, `COND_FIN`, `COND_FAULT`, `COND_EXITED`, or 0 for
//! "nothing since boot") and a token in the low 56 bits. A token selects its payload buffer by
//! parity ([`parity`]).

use pto_abi::launch::{
    CoreFault, COND_ACK, COND_EXITED, COND_FAULT, COND_FIN, COND_KIND_MASK, COND_TOKEN_MASK, DISPATCH_EXIT,
    DISPATCH_IDLE, FAULT_REASON_BITS,
};

/// The first token of a core after boot.
pub const FIRST_TOKEN: u64 = 1;
/// The last usable token: the largest value that fits the condition register's token bits.
pub const LAST_TOKEN: u64 = COND_TOKEN_MASK;

const _: () = assert!(DISPATCH_IDLE < FIRST_TOKEN && LAST_TOKEN < DISPATCH_EXIT);

/// The payload buffer (0 or 1) of a token.
#[inline]
pub const fn parity(token: u64) -> usize {
    (token & 1) as usize
}

/// A decoded condition register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Nothing written since boot reset the register (value 0).
    Nothing,
    /// The core read the payload of this token and is running its kernel.
    Ack(u64),
    /// The kernel of this token finished.
    Fin(u64),
    /// The token ended without running its kernel to completion; the reason is in the core's
    /// fault word of the token's parity.
    Fault(u64),
    /// The core saw `DISPATCH_EXIT` and returned.
    Exited,
    /// A value no core writes (corruption or a newer protocol).
    Invalid(u64),
}

impl Condition {
    /// Decodes a raw condition register value.
    #[inline]
    pub const fn decode(value: u64) -> Condition {
        let token = value & COND_TOKEN_MASK;
        match value & COND_KIND_MASK {
            0 if value == 0 => Condition::Nothing,
            COND_ACK if token != 0 => Condition::Ack(token),
            COND_FIN if token != 0 => Condition::Fin(token),
            COND_FAULT if token != 0 => Condition::Fault(token),
            COND_EXITED if token == 0 => Condition::Exited,
            _ => Condition::Invalid(value),
        }
    }

    /// The raw register value of this condition.
    #[inline]
    pub const fn encode(self) -> u64 {
        match self {
            Condition::Nothing => 0,
            Condition::Ack(t) => COND_ACK | (t & COND_TOKEN_MASK),
            Condition::Fin(t) => COND_FIN | (t & COND_TOKEN_MASK),
            Condition::Fault(t) => COND_FAULT | (t & COND_TOKEN_MASK),
            Condition::Exited => COND_EXITED,
            Condition::Invalid(v) => v,
        }
    }
}

/// The fault word a core writes for `token`: `token << FAULT_REASON_BITS | reason`.
#[inline]
pub const fn fault_word(token: u64, reason: CoreFault) -> u64 {
    (token << FAULT_REASON_BITS) | reason as u64
}

/// What a fault word says about `token`: `None` when it records no fault of that token, else the
/// reason (`Err(raw)` for a reason this firmware does not know).
#[inline]
pub fn fault_of(word: u64, token: u64) -> Option<Result<CoreFault, u32>> {
    if word == 0 || word >> FAULT_REASON_BITS != token {
        return None;
    }
    let raw = (word & ((1 << FAULT_REASON_BITS) - 1)) as u32;
    Some(CoreFault::try_from(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_round_trip_and_reject_values_no_core_writes() {
        for c in
            [Condition::Nothing, Condition::Ack(1), Condition::Fin(LAST_TOKEN), Condition::Fault(7), Condition::Exited]
        {
            assert_eq!(Condition::decode(c.encode()), c);
        }
        for bad in [COND_ACK, COND_FIN, COND_FAULT, COND_EXITED | 5, 5, 9 << 56, u64::MAX] {
            assert_eq!(Condition::decode(bad), Condition::Invalid(bad), "{bad:#x}");
        }
    }

    #[test]
    fn fault_words_name_their_token_and_reason() {
        let w = fault_word(LAST_TOKEN, CoreFault::UnknownKernel);
        assert_eq!(fault_of(w, LAST_TOKEN), Some(Ok(CoreFault::UnknownKernel)));
        assert_eq!(fault_of(w, LAST_TOKEN - 2), None, "a fault of an older token of the same parity");
        assert_eq!(fault_of(0, 0), None);
        assert_eq!(fault_of(3 << FAULT_REASON_BITS | 0x77, 3), Some(Err(0x77)));
        assert_eq!((parity(1), parity(2), parity(LAST_TOKEN)), (1, 0, 1));
    }
}
