import promoter


def test_all_is_exactly_the_public_names() -> None:
    public = {name for name in dir(promoter) if not name.startswith("_")} | {"__version__"}
    modules = {name for name in public if type(getattr(promoter, name)).__name__ == "module"}
    assert set(promoter.__all__) == public - modules
    assert (
        promoter.__all__ == sorted(promoter.__all__, key=str.casefold)
        or sorted(promoter.__all__) == promoter.__all__
    )


def test_every_error_is_a_promoter_error() -> None:
    errors = [getattr(promoter, n) for n in promoter.__all__ if n.endswith("Error")]
    assert all(issubclass(e, promoter.PromoterError) for e in errors)
    assert promoter.UsageError.exit_code == 2
    assert promoter.NotebookError.exit_code == 1
