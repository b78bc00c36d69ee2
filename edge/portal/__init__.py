"""The developer portal's response models, shared by `/portal/v1` (JSON) and the console
(pages), so both edges say the same thing about a key, a provider key or a model."""
