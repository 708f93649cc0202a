"""Play an episode file (``docs/episode-format.md``) as a frame source."""
from __future__ import annotations

import os
from typing import Iterator

from traceany_ros.episode import Episode, load_episode
from traceany_ros.sources import Frame


class EpisodeSource:
    """Frames of one episode, optionally looping.

    Args:
        episode: an :class:`~traceany_ros.episode.Episode` or a path to its ``.npz``.
        loop: start again after the last frame (indices keep counting).
    ``stamp`` of frame k is the episode's own time, plus one clip length
    (and one frame period) per completed loop, so stamps always increase.
    """

    def __init__(self, episode: Episode | str | os.PathLike, loop: bool = False):
        self.episode = episode if isinstance(episode, Episode) else load_episode(episode)
        self.loop = bool(loop)
        ts = self.episode.timestamps
        self.period = float(ts[1] - ts[0]) if len(ts) > 1 else 1.0 / 15.0
        self.duration = float(ts[-1] - ts[0]) + self.period

    @property
    def fps(self) -> float:
        return 1.0 / self.period

    @property
    def image_size(self) -> tuple[int, int]:
        return self.episode.image_size

    def frame(self, k: int) -> Frame:
        """The k-th frame of the (possibly looping) stream."""
        ep = self.episode
        T = ep.num_frames
        i = k % T
        return Frame(rgb=ep.rgb[i], depth=ep.depth[i], intrinsics=ep.intrinsics, cam_to_world=ep.cam_to_world[i],
                     stamp=float(ep.timestamps[i] - ep.timestamps[0]) + (k // T) * self.duration, index=k)

    def __len__(self) -> int:
        return self.episode.num_frames

    def __iter__(self) -> Iterator[Frame]:
        k = 0
        while self.loop or k < self.episode.num_frames:
            yield self.frame(k)
            k += 1
