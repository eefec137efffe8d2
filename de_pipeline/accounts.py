"""The accounts whose data the warehouse holds (an account's name is the `provider` column).

One account by default: DE_PROVIDER_ID and DE_API_KEY (or the embedded simulator), named
`default`. Several with DE_PROVIDERS_FILE, a YAML file such as:

    accounts:
      - name: acme                   # the `provider` column, the Dagster key prefix
        provider_id: "4711"
        api_key_env: DE_API_KEY_ACME # the variable that holds its key (never the key)
        base_url: https://api.example.com   # optional; else DE_API_BASE_URL or the simulator
        timezone: Europe/Berlin      # optional; else DE_TIMEZONE
        max_requests_per_second: 10  # optional; else DE_MAX_REQUESTS_PER_SECOND

The process's DE_* settings are parsed and checked once, in their one place; an account's
settings are a copy of them with its fields replaced (`dataclasses.replace`). A key is looked
up when the account's run needs it, so a missing key fails that account's partitions, not the
code location.

The file holds no secret, and whoever edits it must not be able to send one elsewhere: its
`api_key_env` may only name a variable `DE_API_KEY_<NAME>` (never the database password), its
`base_url` must be https (as DE_API_BASE_URL must), and YAML aliases, which can blow a few
hundred bytes up into gigabytes, are refused, as is a file over 1 MiB.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from de_pipeline.api import ApiSettings, ApiSource
from de_pipeline.api.settings import base_url_from_env, checked_base_url
from de_pipeline.env import Env, SettingsError
from de_pipeline.simulator import simulated_source, simulator_config_from_env
from de_pipeline.warehouse.settings import DEFAULT_ACCOUNT, WarehouseSettings, timezone_from_env

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # fullmatch: `$` would let a trailing newline through
_FIELDS = {"name", "provider_id", "api_key_env", "base_url", "timezone", "max_requests_per_second"}
KEY_VARIABLE_PREFIX = "DE_API_KEY_"  # the only variables an account's api_key_env may name
_KEY_VARIABLE = re.compile(re.escape(KEY_VARIABLE_PREFIX) + r"[A-Z0-9_]+")
MAX_FILE_BYTES = 1 << 20  # a providers file of thousands of accounts is far below this
# Accounts whose fetches a CLI run makes at once (DE_MAX_PARALLEL_ACCOUNTS). Each fetches at
# its own key's rate with DE_MAX_IN_FLIGHT windows, so the default keeps threads and sockets
# (4 x 8) modest; more helps a partner with many accounts when the builds keep up.
DEFAULT_PARALLEL_ACCOUNTS = 4
MAX_PARALLEL_ACCOUNTS = 64


@dataclass(frozen=True)
class Account:
    """One Digital Engagement account. The `default` account is the process environment itself."""

    name: str
    provider_id: str | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    timezone: str | None = None
    max_requests_per_second: float | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_ACCOUNT

    def warehouse_settings(self, process: WarehouseSettings) -> WarehouseSettings:
        """The warehouse as this account's runs write it: a copy of the process's settings
        (`process`, parsed once) with its rows, its archive folder (under DE_ARCHIVE_DIR) and
        its days (its time zone)."""
        if self.is_default:
            return process
        return replace(
            process,
            account=self.name,
            archive_dir=process.archive_dir / self.name,
            timezone=self.timezone or process.timezone,
        )

    def api_source(self, environ: Mapping[str, str] | None = None) -> ApiSource:
        """Its API: the vendor's when DE_API_BASE_URL (or its `base_url`) is set, otherwise the
        embedded simulator serving its provider id, started now. The one place that chooses the
        simulator. The process's settings are parsed once; the account's are a copy with its
        own fields (base URL, key, provider id, rate) replaced."""
        env = Env(environ)
        if self.is_default:
            settings = ApiSettings.from_env(environ)
            if settings is not None:
                return ApiSource.real(settings)
            return self._simulated(environ, ApiSettings.shared_from_env(environ))
        shared = ApiSettings.shared_from_env(environ)
        if self.max_requests_per_second:
            shared = replace(shared, max_requests_per_second=self.max_requests_per_second)
        base_url = self.base_url or base_url_from_env(env)
        if base_url is None:
            return self._simulated(environ, shared)
        return ApiSource.real(
            replace(shared, base_url=base_url, api_key=self._api_key(env, base_url), provider_id=self.provider_id or "")
        )

    def _api_key(self, env: Env, base_url: str) -> str:
        """Its key, from its variable: looked up when its run needs it, so that a missing key
        fails its partitions, not the code location."""
        if not self.api_key_env:
            raise SettingsError(f"account {self.name!r}: api_key_env is needed to call {base_url}")
        why = f"it holds the API key of account {self.name!r} (DE_PROVIDERS_FILE={env.raw('DE_PROVIDERS_FILE')})"
        return env.required(self.api_key_env, why)

    def _simulated(self, environ: Mapping[str, str] | None, client: ApiSettings) -> ApiSource:
        """The embedded simulator serving this account's provider id, in its time zone."""
        config = simulator_config_from_env(environ, timezone=self.timezone or timezone_from_env(environ))
        if not self.is_default:
            config = config.serving(self.provider_id or "")
        return simulated_source(config, client)


def account_named(name: str | None, environ: Mapping[str, str] | None = None) -> Account:
    """The account called `name`; with no name, the only one (an error naming them if several)."""
    accounts = accounts_from_env(environ)
    names = ", ".join(account.name for account in accounts)
    if not name:
        if len(accounts) > 1:
            raise SettingsError(f"there are several accounts ({names}): name one")
        return accounts[0]
    for account in accounts:
        if account.name == name:
            return account
    raise SettingsError(f"no account {name!r}; the accounts are: {names}")


def accounts_from_env(environ: Mapping[str, str] | None = None) -> tuple[Account, ...]:
    """The accounts of DE_PROVIDERS_FILE, or the one `default` account."""
    env = Env(environ)
    path = env.raw("DE_PROVIDERS_FILE")
    if path is None:
        return (Account(DEFAULT_ACCOUNT),)
    return read_providers_file(Path(path), allow_insecure_http=env.flag("DE_ALLOW_INSECURE_HTTP"))


def max_parallel_accounts(environ: Mapping[str, str] | None = None) -> int:
    """DE_MAX_PARALLEL_ACCOUNTS: how many accounts a CLI run fetches at once (1: one after
    another). The warehouse keeps one writer whatever it is."""
    return Env(environ).integer(
        "DE_MAX_PARALLEL_ACCOUNTS", DEFAULT_PARALLEL_ACCOUNTS, minimum=1, maximum=MAX_PARALLEL_ACCOUNTS
    )


def read_providers_file(path: Path, *, allow_insecure_http: bool = False) -> tuple[Account, ...]:
    """The accounts of a providers file; a SettingsError naming the file and the mistake.
    `allow_insecure_http` (DE_ALLOW_INSECURE_HTTP) lets an account's base_url be plain http."""
    where = f"DE_PROVIDERS_FILE={path}"
    document = _load_yaml(path, where)
    entries = document.get("accounts") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SettingsError(f"{where}: expected `accounts:` with a list of accounts (see docs/accounts.md)")
    accounts = tuple(_account(entry, n, where, allow_insecure_http) for n, entry in enumerate(entries, 1))
    names = [account.name for account in accounts]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise SettingsError(f"{where}: the account name {name!r} is used {names.count(name)} times")
    return accounts


class _AliasFound(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(f"an anchor or alias at line {line}")
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: an alias is a reference, so ten lines of them
    nest a billion strings, and printing one (an account's name) fills the memory."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound(event.start_mark.line + 1)
        # types-PyYAML declares `index` an int; PyYAML passes None, or a mapping key's node, too
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def _load_yaml(path: Path, where: str) -> object:
    """The file's YAML document: at most MAX_FILE_BYTES, without anchors or aliases."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError(
            f"{where}: the file is over {MAX_FILE_BYTES} bytes (1 MiB); a providers file is far smaller"
        )
    try:
        return yaml.load(data, Loader=_NoAliasLoader)
    except _AliasFound as exc:
        raise SettingsError(
            f"{where}: YAML anchors and aliases (&name, *name) are not allowed (line {exc.line}); "
            "write each account out in full"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{where}: not valid YAML{line}") from None
    except RecursionError:
        raise SettingsError(f"{where}: not valid YAML (nested too deeply)") from None


def _account(entry: object, number: int, where: str, allow_insecure_http: bool) -> Account:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: account {number} is not a mapping of name, provider_id, api_key_env, ...")
    label = f"{where}: account {entry.get('name', number)!r}"
    unknown = sorted(set(map(str, entry)) - _FIELDS)
    if unknown:
        raise SettingsError(f"{label}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    name = str(entry.get("name", ""))
    if not _NAME.fullmatch(name):
        raise SettingsError(f"{label}: name must be lower-case letters, digits and _ (starting with a letter)")
    if name == DEFAULT_ACCOUNT:
        raise SettingsError(f"{label}: the name {DEFAULT_ACCOUNT!r} is kept for the single account of DE_PROVIDER_ID")
    provider_id = entry.get("provider_id")
    if provider_id is None or not str(provider_id).strip():
        raise SettingsError(f"{label}: provider_id is missing")
    key_variable = entry.get("api_key_env")
    if key_variable is not None and not _KEY_VARIABLE.fullmatch(str(key_variable)):
        raise SettingsError(
            f"{label}: api_key_env={str(key_variable)!r} must name a variable {KEY_VARIABLE_PREFIX}<NAME> "
            f"(upper-case letters, digits, _), e.g. {KEY_VARIABLE_PREFIX}ACME: only those may hold API keys"
        )
    rate = entry.get("max_requests_per_second")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.1 <= rate <= 10_000):
        raise SettingsError(f"{label}: max_requests_per_second must be a number in [0.1, 10000]")
    timezone = entry.get("timezone")
    if timezone is not None:
        try:
            Env({"timezone": str(timezone)}).timezone("timezone")
        except SettingsError as exc:
            raise SettingsError(f"{label}: {exc}") from None
    base_url = entry.get("base_url")
    if base_url is not None:
        base_url = checked_base_url(str(base_url), allow_insecure_http, f"{label}: base_url", "api_key_env")
    return Account(
        name=name,
        provider_id=str(provider_id).strip(),
        api_key_env=None if key_variable is None else str(key_variable),
        base_url=base_url,
        timezone=None if timezone is None else str(timezone),
        max_requests_per_second=None if rate is None else float(rate),
    )


def write_demo_providers_file(folder: Path, count: int) -> Path:
    """A providers file of `count` simulated accounts (demo_1, demo_2, ...), for `demo --providers`."""
    accounts = [{"name": f"demo_{n}", "provider_id": f"demo-provider-{n}"} for n in range(1, count + 1)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-providers.yaml"
    path.write_text(
        "# written by `de-pipeline demo --providers`: simulated accounts\n" + yaml.safe_dump({"accounts": accounts})
    )
    return path
