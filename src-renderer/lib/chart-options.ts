// What every chart.js figure of the workbench shares (LineChart, BarChart): drawn without animation (data
// arrives many times a second), sized by its box, a compact legend top right, tooltips in the workbench's
// number format. Each chart adds its own scales and parsing.
import type { ChartOptions } from 'chart.js';
import { formatNumber } from './format.ts';

export function baseChartOptions<T extends 'line' | 'bar'>(): ChartOptions<T> {
  const options: ChartOptions<'line' | 'bar'> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: {
      legend: { position: 'top', align: 'end', labels: { boxWidth: 10, boxHeight: 10 } },
      tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${formatNumber(item.parsed.y)}` } },
    },
  };
  return options as ChartOptions<T>;
}
