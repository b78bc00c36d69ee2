"""Money coming in: Stripe checkout, webhook fulfilment, refunds and auto-recharge (§7)."""
