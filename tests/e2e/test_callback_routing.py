"""The callback endpoint's short way in (`receiver.fastpath`) answers exactly what the routes do.

Through a real `callboard serve`: callback requests go past the router, everything else down the
ordinary stack, and both give the same JSON errors for what is not a callback.
"""

from __future__ import annotations

import httpx
import pytest

from receiver.fastpath import callback_path_params
from tests.harness import CallboardProcess


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/callbacks/generic/tok.en", "", {"provider": "generic", "token": "tok.en"}),
        ("/callbacks/recall", "", {"provider": "recall"}),
        ("/base/callbacks/recall", "/base", {"provider": "recall"}),
        ("/callbacks/", "", None),
        ("/callbacks/generic/", "", None),
        ("/callbacks//tok", "", None),
        ("/callbacks/generic/tok/more", "", None),
        ("/callbacksgeneric/tok", "", None),
        ("/v1/callbacks/generic/tok", "", None),
    ],
)
def test_callback_paths_match_as_the_routes_do(path: str, root_path: str, expected: dict[str, str] | None) -> None:
    assert callback_path_params(path, root_path) == expected


def test_what_is_not_a_callback_gets_the_routes_answers(callboard: CallboardProcess) -> None:
    url = f"{callboard.url}/callbacks/generic/generic.job_x.AAAA.BBBB"
    wrong_method = httpx.get(url)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    for path in ("/callbacks/generic/a/b", "/callbacks/", "/callbacks//x"):
        response = httpx.post(f"{callboard.url}{path}", content=b"{}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", path


def test_callback_errors_are_json_from_the_short_way(callboard: CallboardProcess) -> None:
    bad_token = httpx.put(f"{callboard.url}/callbacks/generic/not-a-token", content=b"{}")
    assert bad_token.status_code == 401
    assert bad_token.json()["error"]["code"] == "unauthorized"
    assert bad_token.headers["content-type"] == "application/json"
    per_job_only = httpx.post(f"{callboard.url}/callbacks/generic", content=b"{}")
    assert per_job_only.status_code == 404
    assert "per-job URL" in per_job_only.json()["error"]["message"]
    # the admin API behind it is untouched by the short way
    assert callboard.http.get("/v1/jobs").status_code == 200
