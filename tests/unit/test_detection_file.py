"""Detection files: MOTChallenge-style rows grouped per frame, with errors naming the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywatch.edge.camera.evaluation.detection_file import (
    DetectionFileError,
    DetectionFrame,
    format_detections,
    parse_detections,
    read_detections,
    write_detections,
)
from citywatch.models.detections import Detections

TRACKED = """\
2,7,10,20,30,40,0.9,car
1,7,11,21,30,40,0.8,car
1,-1,100,100,5,6,0.5,person,0.7
"""


def test_rows_are_grouped_by_frame_in_frame_order() -> None:
    """Rows out of order come back as one entry per frame, sorted, boxes as xyxy."""
    frames = parse_detections(TRACKED.splitlines())
    assert [f.frame for f in frames] == [1, 2]
    first = frames[0]
    assert first.detections.class_name == ("car", "person")
    np.testing.assert_allclose(first.detections.xyxy[0], [11, 21, 41, 61])
    np.testing.assert_allclose(first.detections.confidence, [0.8, 0.5])
    assert first.track_ids is not None
    assert first.track_ids.tolist() == [7, -1]


def test_untracked_file_has_no_track_ids() -> None:
    """A file where every id is -1 gives ``None`` track ids, not an array of -1."""
    frames = parse_detections(["1,-1,0,0,1,1,0.5,car", "3,-1,0,0,1,1,0.5,car"])
    assert [f.track_ids for f in frames] == [None, None]


def test_total_frames_fills_in_frames_without_rows() -> None:
    """Given the frame count, empty frames appear too, so a replay's clock advances."""
    frames = parse_detections(["2,1,0,0,1,1,0.5,car"], total_frames=4)
    assert [f.frame for f in frames] == [1, 2, 3, 4]
    assert [len(f.detections) for f in frames] == [0, 1, 0, 0]
    assert frames[0].track_ids is not None and len(frames[0].track_ids) == 0


def test_header_comments_and_blank_lines_are_skipped() -> None:
    """A header row, ``#`` comments and blank lines are not detections."""
    lines = ["frame,id,left,top,width,height,conf,class", "# from yolo", "", "1,1,0,0,1,1,0.5,car"]
    assert len(parse_detections(lines)) == 1


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1,1,0,0,1,1,0.5", "7 columns"),
        ("1,1,0,0,1,1,0.5,car,1,2", "10 columns"),
        ("1,1,abc,0,1,1,0.5,car", "left 'abc' is not a number"),
        ("1,1,0,0,-3,1,0.5,car", "negative"),
        ("0,1,0,0,1,1,0.5,car", "frame 0 must be >= 1"),
        ("1.5,1,0,0,1,1,0.5,car", "not an integer"),
        ("1,-2,0,0,1,1,0.5,car", "id -2"),
        ("1,1,0,0,1,1,1.5,car", "outside [0, 1]"),
        ("1,1,0,0,1,1,0.5, ", "class name is empty"),
        ("1,1,nan,0,1,1,0.5,car", "not finite"),
        ("1,1,0,0,1,1,0.5,car,x", "visibility"),
    ],
)
def test_malformed_row_error_names_source_line_and_problem(line: str, problem: str) -> None:
    """Each malformed row raises an error pointing at file:line and saying what is wrong."""
    with pytest.raises(DetectionFileError) as info:
        parse_detections(["1,1,0,0,1,1,0.5,car", line], source="cam1.csv")
    assert str(info.value).startswith("cam1.csv:2: ")
    assert problem in str(info.value)
    assert info.value.line == 2


def test_row_past_total_frames_is_an_error() -> None:
    """A frame number beyond the video's length is reported, not silently dropped."""
    with pytest.raises(DetectionFileError, match="past the video's 3 frames"):
        parse_detections(["4,1,0,0,1,1,0.5,car"], total_frames=3)


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    """A written file reads back as the same frames (to the written precision)."""
    frames = [
        (1, Detections(np.array([[1.5, 2, 11.5, 22]]), np.array([0.75]), ("车,car",)), None),
        (
            3,
            Detections(np.array([[0, 0, 4, 4], [5, 5, 9, 9]]), np.array([0.5, 1.0]), ("a", "b")),
            None,
        ),
    ]
    path = tmp_path / "det.csv"
    assert write_detections(path, frames) == 3
    back = read_detections(path, total_frames=3)
    assert [f.frame for f in back] == [1, 2, 3]
    assert back[0].detections.class_name == ("车,car",)
    np.testing.assert_allclose(back[0].detections.xyxy, frames[0][1].xyxy, atol=0.01)
    np.testing.assert_allclose(back[2].detections.confidence, [0.5, 1.0])
    assert back[0].track_ids is None


def test_writer_keeps_track_ids(tmp_path: Path) -> None:
    """Track ids written per box come back per box."""
    dets = Detections(np.array([[0, 0, 4, 4], [5, 5, 9, 9]]), np.array([0.5, 0.6]), ("a", "b"))
    path = tmp_path / "det.csv"
    write_detections(path, [DetectionFrame(2, dets, np.array([4, -1]))])
    (back,) = read_detections(path)
    assert back.track_ids is not None and back.track_ids.tolist() == [4, -1]


def test_writer_rejects_ids_that_do_not_match_boxes(tmp_path: Path) -> None:
    """One id per box, or the file would lie about which box is which track."""
    dets = Detections(np.array([[0, 0, 4, 4]]), np.array([0.5]), ("a",))
    with pytest.raises(ValueError, match="2 track ids for 1 detections"):
        write_detections(tmp_path / "d.csv", [(1, dets, np.array([1, 2]))])


def test_read_error_names_the_file(tmp_path: Path) -> None:
    """Reading from disk puts the path in the error."""
    path = tmp_path / "bad.csv"
    path.write_text("1,1,0,0,1,1,0.5,car\n1,1,0,0\n", encoding="utf-8")
    with pytest.raises(DetectionFileError, match=r"bad\.csv:2: 4 columns"):
        read_detections(path)


_box = st.tuples(
    st.floats(-50, 2000, allow_nan=False),
    st.floats(-50, 2000, allow_nan=False),
    st.floats(0, 500, allow_nan=False),
    st.floats(0, 500, allow_nan=False),
    st.floats(0, 1),
    st.sampled_from(["car", "truck", "stall", "smoke"]),
)


@given(st.lists(st.tuples(st.integers(1, 20), _box), max_size=30))
def test_any_written_detections_read_back_with_the_same_counts(
    rows: list[tuple[int, tuple[float, float, float, float, float, str]]],
) -> None:
    """Whatever the writer produces, the parser accepts, with the same boxes per frame."""
    per_frame: dict[int, list[tuple[float, float, float, float, float, str]]] = {}
    for frame, box in rows:
        per_frame.setdefault(frame, []).append(box)
    frames = [
        (
            n,
            Detections(
                np.array([[x, y, x + w, y + h] for x, y, w, h, _, _ in boxes]),
                np.array([c for *_, c, _ in boxes]),
                tuple(name for *_, name in boxes),
            ),
            None,
        )
        for n, boxes in sorted(per_frame.items())
    ]
    back = parse_detections(list(format_detections(frames)), total_frames=20)
    assert len(back) == 20
    for frame in back:
        assert len(frame.detections) == len(per_frame.get(frame.frame, []))
