"""The System / PhysicalFamily contract and the registry."""

import pytest

from dynajax.systems import base


def toy_system(name="toy"):
    fam = base.PhysicalFamily("linear", ("k",), lambda t, y, p: -p["k"] * y, {"k": 1.0})
    return base.System(name, (1,), lambda t, y, p: -p["k"] * y, {"k": 2.0}, {"linear": fam},
                       sample_initial=lambda n, *, key: None, generate=lambda split: None)


def test_registry(monkeypatch):
    monkeypatch.setattr(base, "_SYSTEMS", {})
    sys_ = base.register(toy_system())
    assert base.get_system("toy") is sys_ and base.system_names() == ["toy"]
    with pytest.raises(ValueError, match="already registered"):
        base.register(toy_system())
    with pytest.raises(ValueError, match="unknown system 'nope'; known: toy"):
        base.get_system("nope")


def test_params_and_families():
    s = toy_system()
    assert s.check_params({"k": 3.0}) == {"k": 3.0} and s.check_params({}) == {"k": 2.0}
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['c'\] for system 'toy'; allowed: k"):
        s.check_params({"c": 1.0})
    assert s.family("linear").param_names == ("k",)
    with pytest.raises(ValueError, match="no physical family 'full'; known: linear"):
        s.family("full")
    with pytest.raises(ValueError, match="init has"):
        base.PhysicalFamily("bad", ("a", "b"), lambda t, y, p: y, {"a": 1.0})
