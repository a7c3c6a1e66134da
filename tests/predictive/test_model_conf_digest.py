"""The forecast caches' key changes when any conf/model file changes (stale forecasts are never reused)."""
import shutil

from predictive.training import CONF_DIR, model_conf_digest


def test_digest_follows_the_model_files(tmp_path):
    shutil.copytree(CONF_DIR / "model", tmp_path / "model")
    before = model_conf_digest(tmp_path)
    assert before == model_conf_digest(tmp_path)
    path = tmp_path / "model" / "combo.yaml"
    path.write_text(path.read_text() + "\n# edited\n")
    assert model_conf_digest(tmp_path) != before
    (tmp_path / "model" / "new_model.yaml").write_text("name: ewma\n")
    assert len({before, model_conf_digest(tmp_path)}) == 2
