"""Channel configuration: YAML in git, validated with located errors, documented from its models."""

from thumpflow.config.loader import load_config, parse_config
from thumpflow.config.model import Channel, Condition, Config

__all__ = ["Channel", "Condition", "Config", "load_config", "parse_config"]
