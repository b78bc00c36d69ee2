"""single sign-on

Per-org OpenID Connect: the provider (`sso_configs`, client secret as MultiFernet
ciphertext), the email domains an org claims and proves with a DNS TXT record
(`sso_domains`; a verified domain belongs to one org only), and sign-ins between their
start and finish (`sso_logins`: hashed state, nonce, PKCE verifier, expiry, single use).
Users provisioned by SSO have no password, so `users.password_hash` becomes nullable.

Downgrading drops the three tables and gives password-less users a bcrypt hash of a random
secret nobody knows, so the column can be NOT NULL again and they still cannot log in.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 07:04:11.804085
"""

import secrets
from collections.abc import Sequence

import bcrypt
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sso_configs",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("client_secret_ciphertext", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "client_secret_hint", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False
        ),
        sa.Column(
            "default_role",
            sqlmodel.sql.sqltypes.AutoString(length=20),
            server_default=sa.text("'member'"),
            nullable=False,
        ),
        sa.Column("require_sso", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "default_role IN ('admin', 'finance', 'member')",
            name=op.f("ck_sso_configs_default_role"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sso_configs_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_sso_configs")),
    )
    op.create_table(
        "sso_domains",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
        sa.Column(
            "verification_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sso_domains_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_domains")),
        sa.UniqueConstraint("org_id", "domain", name=op.f("uq_sso_domains_org_id")),
    )
    op.create_index(op.f("ix_sso_domains_org_id"), "sso_domains", ["org_id"], unique=False)
    op.create_index(
        "uq_sso_domains_verified_domain",
        "sso_domains",
        ["domain"],
        unique=True,
        postgresql_where=sa.text("verified_at IS NOT NULL"),
    )
    op.create_table(
        "sso_logins",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("state_hash", sa.LargeBinary(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("code_verifier", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("redirect_uri", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("return_to", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sso_logins_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_logins")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_logins_state_hash")),
    )
    op.create_index(op.f("ix_sso_logins_expires_at"), "sso_logins", ["expires_at"], unique=False)
    op.create_index(op.f("ix_sso_logins_org_id"), "sso_logins", ["org_id"], unique=False)
    op.alter_column("users", "password_hash", existing_type=sa.VARCHAR(length=100), nullable=True)


def downgrade() -> None:
    unusable = bcrypt.hashpw(secrets.token_bytes(32), bcrypt.gensalt(12)).decode()
    op.execute(
        sa.text("UPDATE users SET password_hash = :h WHERE password_hash IS NULL").bindparams(
            h=unusable
        )
    )
    op.alter_column("users", "password_hash", existing_type=sa.VARCHAR(length=100), nullable=False)
    op.drop_index(op.f("ix_sso_logins_org_id"), table_name="sso_logins")
    op.drop_index(op.f("ix_sso_logins_expires_at"), table_name="sso_logins")
    op.drop_table("sso_logins")
    op.drop_index(
        "uq_sso_domains_verified_domain",
        table_name="sso_domains",
        postgresql_where=sa.text("verified_at IS NOT NULL"),
    )
    op.drop_index(op.f("ix_sso_domains_org_id"), table_name="sso_domains")
    op.drop_table("sso_domains")
    op.drop_table("sso_configs")
