"""The check every family's compile_specs(lengths=True) must pass: the same kernels and arguments
as the plain specs, with HAS_LENGTHS on and int32 lengths."""


def assert_lengths_variant(plain_specs, varlen_specs) -> None:
    for plain, masked in zip(plain_specs, varlen_specs, strict=True):
        assert masked.name == plain.name and masked.fn is plain.fn
        assert masked.signature == plain.signature and plain.signature["lengths_ptr"] == "*i32"
        assert masked.constexprs == {**plain.constexprs, "HAS_LENGTHS": True}
        assert plain.constexprs["HAS_LENGTHS"] is False
        assert plain.meta["lengths"] is False and masked.meta["lengths"] is True
