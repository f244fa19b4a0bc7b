//! Model prices and user groups with price multipliers.

use firefly_core::money::TokenPrice;
use firefly_core::time::Millis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// The model name clients ask for.
    pub model: String,
    pub price: TokenPrice,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroup {
    pub id: i64,
    pub name: String,
    /// Price multiplier in basis points: 10 000 = 1×.
    pub multiplier_bp: i64,
    pub members: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub multiplier_bp: Option<i64>,
}
