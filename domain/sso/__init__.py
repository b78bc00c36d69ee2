"""Per-org OpenID Connect single sign-on (DESIGN.md §4).

`configuration` is the org admin's side (provider, client, domains and their DNS proof,
"test connection"); `signin` is the user's (discovery by email, start, finish, just-in-time
provisioning); `required` is the one rule password login asks about; `provider` talks to the
identity provider; `domains` owns what an email domain is and how it is proved.
"""
