"""The CLI's error contract: the user's mistakes are one line and exit 2; the project's own bugs keep their
traceback."""

import pytest

from tuner import cli


@pytest.mark.parametrize("name", ["../..", "..", "/etc", "a/../../b", ".hidden", "a/b"])
@pytest.mark.parametrize("command", ["resume", "report", "export", "ui"])
def test_a_study_name_cannot_leave_the_storage_folder(tmp_path, capsys, command, name):
    (tmp_path / "store").mkdir()
    assert cli.main([command, name, "--storage", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"tuner: error: {name!r} is not a study name (letters, digits, '_', '.', '-'; not starting with '.')\n"
    )


def test_a_missing_study_is_one_line(tmp_path, capsys):
    assert cli.main(["report", "nothing_here", "--storage", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"tuner: error: no study in {tmp_path / 'nothing_here'}")


def test_an_internal_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """Once every ValueError became one line, hiding where a bug was; now only the tuner's own error types do."""

    def broken(args):
        raise ValueError("a bug deep inside")

    monkeypatch.setitem(cli.COMMANDS, "report", (broken, "", ""))
    with pytest.raises(ValueError, match="a bug deep inside"):
        cli.main(["report", "anything", "--storage", str(tmp_path)])
