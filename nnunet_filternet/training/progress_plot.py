"""nnU-Net's ``progress.png`` drawn every few epochs instead of every epoch (budget variants on the CPU).

nnU-Net redraws its progress figure (three 30 x 18 inch panels with seaborn styling) at the end of every epoch.
On this project's 2-core CPU that costs about 1 s an epoch, a quarter of a 40-iteration epoch of the tiny plans
(nnU-Net's training log: 4.2 s "Epoch time" but 5.1 s between epoch starts). :class:`ThrottledProgressPlotMixin`
draws it every ``progress_plot_every`` epochs and after the last one, so the figure at the end of a training is
the same; nothing that is trained, logged or checkpointed changes.
"""

from __future__ import annotations


class ThrottledProgressPlotMixin:
    """Mixin for an ``nnUNetTrainer`` subclass: ``progress.png`` every ``progress_plot_every`` epochs and at the end."""

    #: draw the progress figure after epochs k * progress_plot_every - 1 and after the last epoch.
    progress_plot_every: int = 10

    def on_train_start(self):
        super().on_train_start()
        local = self.logger.local_logger  # the edge-gate trainers replace it in initialize(), before this hook
        draw = local.plot_progress_png

        def plot_progress_png(output_folder: str) -> None:
            epoch = self.current_epoch
            if (epoch + 1) % self.progress_plot_every == 0 or epoch >= self.num_epochs - 1:
                draw(output_folder)

        local.plot_progress_png = plot_progress_png
