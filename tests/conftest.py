"""Settings every test module shares."""

from hypothesis import settings

# CI machines share their cores: an example that takes 300 ms there is slow, not wrong, and a
# deadline would fail it at random. Each test still bounds its work with max_examples.
settings.register_profile("msklite", deadline=None)
settings.load_profile("msklite")
